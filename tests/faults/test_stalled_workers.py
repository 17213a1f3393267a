"""Scenario 4: a worker stalls for three leases; another takes its jobs over.

Three ways to stall, each holding four jobs:

``sigstop``    SIGSTOP while its jobs run (they run until the stall is over);
``partition``  cut off from Redis by a TCP proxy (``proxy.py``) while its jobs run;
``ack-stop``   the worker stops itself (a client-layer hook) just before sending its first ack,
               so that the ack reaches Redis three leases late.

While it is stalled its leases run out and a second worker runs the jobs. When it comes back,
every late write it attempts (renewals, the ack) must be refused, and the outcome Redis records
must be the new owner's. Its own runs did carry on (the journal shows them as zombie overlaps):
fencing is what makes them harmless.
"""

from __future__ import annotations

import signal
import time

import pytest

from django_convoy.store.keys import workers_registry_key

from . import checker
from .cluster import PREFIX, Cluster, in_parallel, outcome
from .proxy import Proxy
from .queues import FAULT_QUEUES

LEASE = FAULT_QUEUES["faults"]["LEASE"]
JOBS = 4


STALLS = ["sigstop", "partition", "ack-stop"]


@pytest.fixture(scope="module")
def stalls(tmp_path_factory):
    """The three kinds of stall, side by side, each with a redis-server of its own."""

    roots = {stall: tmp_path_factory.mktemp(stall) for stall in STALLS}  # not in threads

    def scenario(stall: str) -> None:
        cluster = Cluster(roots[stall])
        try:
            stalled_worker(cluster, stall)
        finally:
            cluster.close()

    return in_parallel({stall: lambda stall=stall: scenario(stall) for stall in STALLS})


@pytest.mark.parametrize("stall", STALLS)
def test_stalled_worker_is_taken_over_and_all_its_late_writes_are_refused(stalls, stall):
    outcome(stalls, stall)


def stalled_worker(cluster: Cluster, stall: str) -> None:
    queue = cluster.queue("faults")
    ids = [f"stalled-{i}" for i in range(JOBS)]
    release = cluster.root / "release"  # sigstop, partition: the jobs run until the stall ends
    payload = {"sleep": 0.3} if stall == "ack-stop" else {"hold": str(release), "sleep": 0.3}
    queue.add_jobs([(job_id, payload) for job_id in ids])
    proxy = Proxy(cluster.port) if stall == "partition" else None
    try:
        old = cluster.worker(
            "faults",
            name="stalled",
            port=proxy.port if proxy else None,
            **({"CONVOY_FAULT_PLAN": "ack_claim:1:before:stop"} if stall == "ack-stop" else {}),
        )
        cluster.wait_for(
            lambda: sum(run.worker_pid == old.pid for run in cluster.runs()) == JOBS,
            30,
            "all started",
        )
        # The new owner and a jam guard are up before the stall (their start-up is not timed).
        new = cluster.worker("faults", name="new-owner")
        cluster.jamguard("faults")
        registry = workers_registry_key(PREFIX)
        cluster.wait_for(lambda: queue.client.zcard(registry) == 2, 30, "the new owner is up")
        if stall == "ack-stop":
            # Stopped itself at its first ack, maybe before the new owner was up: the three
            # leases count from when someone could take over.
            (fired,) = cluster.wait_for(cluster.faults_fired, 30, "the old one stopped at its ack")
            stalled_at, stall_began = time.monotonic(), fired["t"] / 1e9
        else:
            if proxy:
                proxy.partition()
            else:
                old.signal(signal.SIGSTOP)
            stalled_at = stall_began = time.monotonic()
        # Taken over: Redis holds the job for the new owner (its runs start as the quarantine
        # of jobs back from a jam lends them children).
        taken: dict[str, float] = {}
        while (now := time.monotonic()) < stalled_at + 3 * LEASE:
            for job_id, run in queue.client.hgetall(queue.keys.run).items():
                if run.split("|", 2)[2].rsplit(".", 2)[1] == str(new.pid):
                    taken.setdefault(job_id, now)
            time.sleep(0.05)
        # The stall goes on until the new owner runs them all (each in a child: a while).
        cluster.wait_for(
            lambda: {r.id for r in cluster.runs() if r.worker_pid == new.pid} == set(ids),
            30,
            "the new owner runs every job taken over",
        )
        if proxy:
            proxy.heal()
        else:
            old.signal(signal.SIGCONT)
        release.touch()

        def settled() -> bool:
            answered = {job_id for job_id in ids if f"faults {job_id}:" in old.output()}
            # The old runs go on after their lease lost (a thread cannot be stopped): wait for
            # their ends too, or stopping the worker cuts them off unrecorded.
            ended = all(run.end is not None for run in cluster.runs() if run.worker_pid == old.pid)
            return queue.stats()["processed_total"] == JOBS and answered == set(ids) and ended

        cluster.wait_for(
            settled, 30, "new owner done, and every late write of the old one answered"
        )
        cluster.stop_all()
    finally:
        if proxy:
            proxy.close()

    runs = cluster.runs()
    old_log, new_log = old.output(), new.output()
    refused = checker.refusals(old_log)
    late_acks_accepted = [entry for entry in checker.acks(old_log) if entry[1] in ids]
    new_acks = {job_id for _, job_id, _ in checker.acks(new_log)}
    live, zombie = checker.overlaps(runs)
    takeover = [at - stall_began for at in taken.values()]
    attempted = sum(refused.values()) + len(late_acks_accepted)
    checker.report(
        f"4 stalled worker ({stall}, {3 * LEASE:.0f} s = 3 leases, {JOBS} jobs held)",
        taken_over_during_stall=f"{len(taken)}/{JOBS}",
        takeover_max_s=round(max(takeover, default=0), 2),
        late_writes_refused=dict(refused),
        late_writes_accepted=len(late_acks_accepted),
        refused_percent=round(100.0 * sum(refused.values()) / max(1, attempted), 1),
        outcomes_recorded_from_new_owner=f"{len(new_acks & set(ids))}/{JOBS}",
        live_overlaps=len(live),
        zombie_overlaps=len(zombie),
        left_behind=checker.count_left_behind(queue.client, queue.keys),
    )
    assert set(taken) == set(ids), "not every job was taken over while its worker was stalled"
    assert not late_acks_accepted
    assert new_acks >= set(ids)
    assert refused["renew"] + refused["ack"] >= JOBS
    if stall == "ack-stop":
        assert refused["ack"] >= 1  # the acks that waited at the hook (one batch or more)
    assert not live
    old_runs = [run for run in runs if run.worker_pid == old.pid]
    if stall != "ack-stop":  # these ran through the stall: zombies, fenced off
        assert len(zombie) == JOBS
        assert all(run.owner is False for run in old_runs)
    assert queue.stats()["processed_total"] == JOBS
    assert checker.count_left_behind(queue.client, queue.keys) == 0


def test_renewal_racing_an_ack_is_not_reported_as_a_lost_lease(cluster: Cluster):
    """A renewal refused because the run's own ack landed first is no lost lease: the worker
    must not log that a finished job's outcome "will be discarded"."""
    queue = cluster.queue("faults")
    queue.add_job("raced", {"sleep": 0.5})  # outlives a keep interval: renewed once
    # The keeper's first renewal of the run leaves a second late: the run ends and is acked
    # meanwhile, so the renewal reaches Redis after the ack.
    worker = cluster.worker("faults", CONVOY_FAULT_PLAN="renew:1:before:sleep")
    cluster.wait_for(lambda: queue.stats()["processed_total"] == 1, 60, "the job done")
    cluster.wait_for(cluster.faults_fired, 30, "the renewal went out late")
    time.sleep(1.5)
    cluster.stop_all()
    log = worker.output()
    checker.report(
        "4b renewal racing an ack",
        acked=len(checker.acks(log)),
        lease_lost_warnings=checker.refusals(log)["renew"],
    )
    assert checker.acks(log) == [("faults", "raced", 1)]
    assert checker.refusals(log)["renew"] == 0, log


def test_worker_recovers_when_its_connections_die_silently(cluster: Cluster):
    """The far end of every connection vanishes without a FIN or RST (a failover, a NAT that
    forgot the flow): the worker must notice and reconnect, not wait forever on a reply."""
    queue = cluster.queue("faults")
    proxy = Proxy(cluster.port)
    try:
        worker = cluster.worker("faults", name="severed", port=proxy.port)
        queue.add_job("before", {"sleep": 0})
        cluster.wait_for(lambda: queue.stats()["processed_total"] == 1, 60, "first job done")
        proxy.sever()
        severed_at = time.monotonic()
        queue.add_job("after", {"sleep": 0})
        deadline = severed_at + 40
        while queue.stats()["processed_total"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        recovered = queue.stats()["processed_total"] == 2
        checker.report(
            "4c connections severed silently (no FIN, no RST)",
            worker_ran_the_next_job=recovered,
            within_s=round(time.monotonic() - severed_at, 1) if recovered else "> 40",
            reconnections=proxy.connections,
        )
        cluster.stop_all(timeout=5)
    finally:
        proxy.close()
    assert recovered, worker.output()
