"""The kill storm: two workers, one of them SIGKILLed every two seconds (and started again at
once), two ``convoy_jamguard`` processes recovering what the dead left behind.

No job may be lost or run by two live leases at once; every job must run to completion; every
re-run must be explained by a kill (the killed worker was running it, or had finished it without
its ack reaching Redis), or by a stall its own worker noticed and logged; and each run a killed
worker left in Redis must be recovered by a jam guard within about one lease.

Scenario 3 runs it on one queue of a private redis-server (``test_kill_storm.py``);
tests/cluster on queues spread over a Redis Cluster's primaries, and behind Sentinel.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django_convoy.queue import Queue
from django_convoy.store.keys import workers_registry_key

from . import checker
from .cluster import Processes

GUARD_INTERVAL = 0.25


@dataclass
class Kill:
    at: float
    pid: int
    held: list[tuple[str, str]] = field(default_factory=list)  # runs it left in Redis: (queue, id)
    recovered_after: float | None = None


def held_by(queues: Sequence[Queue], pid: int) -> list[tuple[str, str]]:
    """The runs Redis holds for the worker process ``pid`` (worker id host.pid.random)."""
    return [
        (queue.name, job_id)
        for queue in queues
        for job_id, run in queue.client.hgetall(queue.keys.run).items()
        if run.split("|", 2)[2].rsplit(".", 2)[1] == str(pid)
    ]


def kill_storm(
    processes: Processes,
    queues: Sequence[Queue],
    jobs: int,
    sleep: float,
    *,
    every: float = 2.0,
    concurrency: int | None = None,
    scenario: str = "3 kill storm",
) -> None:
    """Run ``jobs`` jobs of ``sleep`` s, spread over ``queues``, through the storm; check it.

    Both workers serve every queue, ``concurrency`` runs at once on each (default: its own).
    """
    names = [queue.name for queue in queues]
    ids = [f"storm-{i}" for i in range(jobs)]  # unique over the queues: the checker goes by id
    for n, queue in enumerate(queues):
        queue.add_jobs([(job_id, {"sleep": sleep}) for job_id in ids[n :: len(queues)]])
    guards = [
        processes.jamguard(*names, name=f"jamguard{k}", interval=GUARD_INTERVAL) for k in range(2)
    ]
    options = ("--no-jam-guard",)
    if concurrency:
        options += ("--concurrency", str(concurrency))

    def start(k: int):
        return processes.worker(*names, name=f"worker{k}", options=options)

    def finished() -> int:
        stats = [queue.stats() for queue in queues]
        return sum(s["processed_total"] + s["failed_total"] for s in stats)

    workers = [start(0), start(1)]
    kills: list[Kill] = []
    victim, next_kill = 0, time.monotonic() + every
    began = time.monotonic()
    while (done := finished()) < jobs:
        assert time.monotonic() - began < 60 + jobs * sleep, f"storm never ended: {done} done"
        now = time.monotonic()
        if now >= next_kill:
            doomed = workers[victim]
            doomed.signal(signal.SIGKILL)
            doomed.wait()
            kills.append(Kill(now, doomed.pid, held_by(queues, doomed.pid)))
            workers[victim] = start(victim)
            victim, next_kill = 1 - victim, now + every
        for kill in kills:
            if kill.recovered_after is None and not held_by(queues, kill.pid):
                kill.recovered_after = now - kill.at
        time.sleep(0.05)
    seconds = time.monotonic() - began
    processes.stop_all()

    runs = processes.runs()
    present = {job_id for queue in queues for job_id in checker.states(queue.client, queue.keys)}
    lost = checker.lost(ids, runs, present)
    incomplete = sorted(set(ids) - checker.completed_ids(runs))
    live, zombie = checker.overlaps(runs)
    killed = {kill.pid for kill in kills}
    logs = {proc.pid: proc.output() for proc in processes.procs}
    earlier = [run for group in checker.by_id(runs).values() for run in group[:-1]]
    # A run that was not killed can still have lost its lease, if two busy cores starved its
    # worker for most of a lease: then the worker must have noticed (fencing), and said so.
    stalled = [
        run
        for run in earlier
        if run.worker_pid not in killed
        and f"{run.queue} {run.id}: " in logs.get(run.worker_pid, "")
    ]
    unexplained = [run for run in earlier if run.worker_pid not in killed and run not in stalled]
    reruns = len(runs) - jobs
    recoveries = [kill.recovered_after for kill in kills if kill.held]
    # Every run a dead worker left must have been recovered by a jam guard (nothing else may
    # take it: the workers run without their own), once per kill that left it.
    owed = Counter(job for kill in kills for job in kill.held)
    recovered = checker.recoveries(*(guard.output() for guard in guards))
    unrecovered = sorted(job for job, n in owed.items() if recovered[job] < n)
    lease = max(queue.config.lease for queue in queues)
    claimable = sum(concurrency or queue.config.concurrency for queue in queues)  # per worker
    stats = [queue.stats() for queue in queues]
    processed = sum(s["processed_total"] for s in stats)
    failed = sum(s["failed_total"] for s in stats)
    left_behind = sum(checker.count_left_behind(q.client, q.keys) for q in queues)
    client, prefix = queues[0].client, queues[0].key_prefix
    checker.report(
        f"{scenario} ({jobs} jobs of {sleep} s on {len(queues)} queue(s), SIGKILL every {every} s)",
        seconds=round(seconds, 1),
        kills=len(kills),
        runs_left_by_killed_workers=sum(owed.values()),
        recovered_by_jam_guards=sum(recovered.values()),
        jobs_lost=len(lost),
        jobs_never_completed=len(incomplete),
        live_overlaps=len(live),
        zombie_overlaps=len(zombie),
        reruns=reruns,
        reruns_per_kill=round(reruns / max(1, len(kills)), 2),
        reruns_after_a_stall_noticed_by_its_worker=len(stalled),
        reruns_unexplained=len(unexplained),
        recovery_p50_s=round(checker.percentile([r or 0 for r in recoveries], 0.5), 2),
        recovery_max_s=round(max((r or 0 for r in recoveries), default=0), 2),
        processed_total=processed,
        failed_total=failed,
        left_behind=left_behind,
        # Killed workers stay in the registry (an hour) and their hashes until they expire:
        # expected, shown so that nobody mistakes them for leaked job state.
        dead_workers_still_registered=client.zcard(workers_registry_key(prefix)),
    )
    assert kills, "the storm ended before its first kill"
    assert owed, "no kill left a run behind: nothing for the jam guards to recover"
    assert not lost
    assert not incomplete
    assert not live
    assert not unexplained
    # A kill can cost at most the runs the worker had claimed: those executing, and those
    # finished but not yet acked (the reporter acks in batches, within milliseconds).
    assert reruns <= len(kills) * 2 * claimable
    assert processed == jobs and failed == 0
    assert not unrecovered, unrecovered
    assert all(r is not None for r in recoveries), kills
    # Deadline <= last renewal + LEASE <= kill + LEASE; then one jam-guard round; then slack
    # for two shared, busy cores.
    assert max(recoveries, default=0) <= lease + GUARD_INTERVAL + 1.5, kills
    assert left_behind == 0
