"""Scenario 11c: flow control's limits hold exactly in real processes (issue 18's "Tests").

``GROUP_CONCURRENCY``, ``RATE_LIMIT`` and ``GROUP_RATE_LIMIT``, each on a queue of its own
(``queues.py``), measured from the journal (``flow.py``, ``checker.py``): no group ever runs more
than its cap at once, and no stretch of time sees more starts (by Redis's clock) than the token
bucket allows; each limit is reached too, so it holds exactly rather than by running slowly.

``workers``  four ``convoy_worker`` processes on threads; then two on ``--pool processes``,
             whose children claim, run and ack for themselves;
``kill``     a worker SIGKILLed while its runs hold a group at its cap: ``convoy_jamguard``
             gives the slots back, the group runs at its cap again, and the groups figures of
             ``stats()`` go back to none;
``restart``  Redis SIGKILLed mid-run and restarted from its AOF (``appendfsync always``): the
             group counts and the rate limit's bucket survive it.
"""

from __future__ import annotations

import signal
import time
from operator import attrgetter

import pytest

from django_convoy.store.keys import workers_registry_key

from . import checker, flow, journal
from .cluster import PREFIX, Cluster, in_parallel, outcome
from .queues import FAULT_QUEUES

QUEUES = ("flow-groups", "flow-rate", "flow-group-rate")
# Four workers on threads have 16 slots per queue, more than four groups at their caps; the two
# pool workers 4 children per queue, more than one group's cap.
LOADS = {
    "threads": {
        "flow-groups": flow.Load(("g1", "g2", "g3", "g4"), per_group=6, sleep=0.4),
        "flow-rate": flow.Load(("a", "b", None), per_group=14, sleep=0.02),
        "flow-group-rate": flow.Load(("a", "b", "c"), per_group=10, sleep=0.02),
    },
    "processes": {
        "flow-groups": flow.Load(("g1",), per_group=8, sleep=0.4),
        "flow-rate": flow.Load(("a", None), per_group=14, sleep=0.02),
        "flow-group-rate": flow.Load(("a", "b"), per_group=8, sleep=0.02),
    },
}
WORKERS = {
    "threads": [()] * 4,
    "processes": [("--pool", "processes", "--concurrency", "2")] * 2,
}
WAITING = {"threads": 4, "processes": 2 * 2}  # claimers per queue: each thread pool, each child


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_limits_hold_exactly_across_worker_processes(cluster: Cluster, pool: str):
    queues = {name: cluster.queue(name) for name in QUEUES}
    ids, seconds = flow.run_load(cluster, queues, LOADS[pool], WORKERS[pool], WAITING[pool])
    runs = cluster.runs()
    found = {name: flow.figures(queue, runs) for name, queue in queues.items()}
    flow.report_load(
        f"11c flow control, {len(WORKERS[pool])} workers on {pool}", ids, runs, seconds, found
    )
    for name, queue in queues.items():
        flow.assert_limits_held(queue, found[name])


# -- a worker SIGKILLed while its runs hold a group at its cap ----------------------------------

POOLS = {"threads": (), "processes": ("--pool", "processes", "--concurrency", "3")}
CAP = FAULT_QUEUES["flow-groups"]["GROUP_CONCURRENCY"]
VICTIMS = [f"victim-{i}" for i in range(CAP)]  # the runs that hold the group at its cap
LATER = [f"later-{i}" for i in range(2 * CAP)]  # its jobs that wait meanwhile
TAG = attrgetter("tag")  # a run's group, as its job journals it


@pytest.fixture(scope="module")
def kills(tmp_path_factory):
    """The kill on each pool, side by side, each with a redis-server of its own."""
    roots = {pool: tmp_path_factory.mktemp(f"kill-{pool}") for pool in POOLS}  # not in threads

    def scenario(pool: str) -> dict:
        cluster = Cluster(roots[pool])
        try:
            return killed_at_the_cap(cluster, pool)
        finally:
            cluster.close()

    return in_parallel({pool: lambda pool=pool: scenario(pool) for pool in POOLS})


def group_row(queue, group: str):
    return next((row for row in queue.store.groups(0, 20).rows if row.group == group), None)


def killed_at_the_cap(cluster: Cluster, pool: str) -> dict:
    queue = cluster.queue("flow-groups")
    release = cluster.root / "release"  # the victims' runs hold until the kill
    queue.add_jobs(
        [(job, {"hold": str(release), "sleep": 0.4, "tag": "g"}) for job in VICTIMS], group="g"
    )
    queue.add_jobs([(job, {"sleep": 0.4, "tag": "g"}) for job in LATER], group="g")
    # The workers recover nothing themselves: the slots must come back through convoy_jamguard.
    options = ("--no-jam-guard", *POOLS[pool])
    doomed = cluster.worker("flow-groups", name="doomed", options=options)
    cluster.wait_for(
        lambda: {run.id for run in cluster.runs()} >= set(VICTIMS), 60, "the group at its cap"
    )
    survivor = cluster.worker("flow-groups", name="survivor", options=options)
    guard = cluster.jamguard("flow-groups")
    registry = workers_registry_key(PREFIX)
    cluster.wait_for(lambda: queue.client.zcard(registry) == 2, 60, "the survivor is up")
    # The jam guard notes Redis's run id in its first round (only it runs the jam guard here).
    cluster.wait_for(lambda: queue.client.hget(queue.keys.stats, "server"), 60, "the guard up")
    time.sleep(0.3)  # room for the survivor to take what the cap should keep from it
    at_kill = group_row(queue, "g")
    doomed.signal(signal.SIGKILL)
    killed_at = journal.now_ns()
    doomed.wait()
    release.touch()
    cluster.wait_for(
        lambda: queue.stats()["processed_total"] == len(VICTIMS) + len(LATER),
        30,
        "every job run once the jam guard gave the group's slots back",
    )
    cluster.stop_all()

    runs = [run for run in cluster.runs() if run.queue == queue.name]
    after = [run for run in runs if run.start > killed_at]
    stats = queue.stats()
    return {
        "group_at_the_kill": at_kill and (at_kill.processing, at_kill.queued, at_kill.at_cap),
        "started_before_the_kill": sorted(run.id for run in runs if run.start < killed_at),
        "recovered_by_the_jam_guard": sorted(
            job for (_, job), n in checker.recoveries(guard.output()).items() for _ in range(n)
        ),
        "peak": checker.group_peaks(runs, TAG, {doomed.pid: killed_at}).get("g"),
        "peak_after_the_recovery": checker.group_peaks(after, TAG, {}).get("g"),
        "group_ran_again_after_s": round((min(r.start for r in after) - killed_at) / 1e9, 2),
        "runs_after_by_the_survivor": sum(run.worker_pid == survivor.pid for run in after),
        "runs_after": len(after),
        "reruns": len(runs) - len(VICTIMS) - len(LATER),
        "live_overlaps": len(checker.overlaps(runs)[0]),
        "groups_after": (stats["groups"], stats["groups_held"]),
        "group_rows_after": queue.store.groups(0, 20).total,
        "left_behind": checker.count_left_behind(queue.client, queue.keys),
    }


@pytest.mark.parametrize("pool", POOLS)
def test_a_killed_workers_group_slots_come_back_through_the_jam_guard(kills, pool):
    found = outcome(kills, pool)
    checker.report(f"11c flow control, a worker on {pool} SIGKILLed at its group's cap", **found)
    # Before the kill: the group at its cap, its other jobs waiting, the survivor idle.
    assert found["group_at_the_kill"] == (CAP, len(LATER), True)
    assert found["started_before_the_kill"] == VICTIMS
    # The kill: the jam guard recovered the runs, each once; their slots came back with them,
    # every one (the group ran at its cap again) and never more (nor above it).
    assert found["recovered_by_the_jam_guard"] == VICTIMS
    assert found["peak"] == found["peak_after_the_recovery"] == CAP
    assert found["reruns"] == CAP
    assert found["runs_after_by_the_survivor"] == found["runs_after"] == len(VICTIMS + LATER)
    assert found["live_overlaps"] == 0
    # Nothing of the group is left counted: stats() and the admin's list of groups are empty.
    assert found["groups_after"] == (0, 0)
    assert found["group_rows_after"] == 0
    assert found["left_behind"] == 0


# -- Redis SIGKILLed mid-run and restarted from its AOF -------------------------------------------

AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
DOWN = 1.5  # longer than a lease: every lease has lapsed by Redis's clock when it is back
RESTART_GROUPS = ("g1", "g2", "g3")
# The first two runs of each group span the outage (with a second and a half to spare), ending
# a second apart after it: if Redis forgot that they hold the group's slots, the first one's
# end would let more start beside the second.
SPANNING = (3.0, 4.0)
PACED_AFTER_THE_BURST = 10  # more than the bucket gains while the claims pause, fewer than a burst


def test_group_counts_and_the_bucket_survive_a_redis_restart(make_cluster):
    cluster = make_cluster(redis_args=AOF_ALWAYS)
    groups, bucket = cluster.queue("flow-groups"), cluster.queue("flow-slow-refill")
    cap, limit = groups.config.group_concurrency, bucket.config.rate_limit
    for k in range(2):
        cluster.worker("flow-groups", "flow-slow-refill", name=f"worker{k}")
    guard = cluster.jamguard("flow-groups", "flow-slow-refill")
    registry = workers_registry_key(PREFIX)
    cluster.wait_for(lambda: groups.client.zcard(registry) == 2, 60, "the workers up")
    ids = []
    for group in RESTART_GROUPS:
        jobs = [(f"{group}-long-{n}", flow.payload(group, s)) for n, s in enumerate(SPANNING)]
        jobs += [(f"{group}-short-{n}", flow.payload(group, 0.3)) for n in range(2)]
        groups.add_jobs(jobs, group=group)
        ids += [job for job, _ in jobs]
    # Its burst at once, then a run every 500 ms: Redis goes down while the backlog waits.
    paced = [f"paced-{n}" for n in range(limit.burst + PACED_AFTER_THE_BURST)]
    bucket.add_jobs([(job, flow.payload(None, 0.02)) for job in paced])
    ids += paced

    def started(queue_name: str) -> int:
        return sum(run.queue == queue_name for run in cluster.runs())

    cluster.wait_for(
        lambda: (
            started("flow-groups") >= cap * len(RESTART_GROUPS)
            and started("flow-slow-refill") > limit.burst
        ),
        60,
        "every group at its cap and the bucket spent",
    )
    cluster.kill_redis()
    down_at = journal.now_ns()
    time.sleep(DOWN)
    cluster.start_redis()
    up_at = journal.now_ns()

    def drained() -> bool:
        return sum(q.stats()["processed_total"] for q in (groups, bucket)) >= len(ids)

    cluster.wait_for(drained, 60, "every job run after the restart")
    cluster.stop_all()

    runs = cluster.runs()
    in_groups = flow.figures(groups, runs)
    in_bucket = flow.figures(bucket, runs)
    spanned = [run for run in runs if run.start < down_at and (run.end or 0) > up_at]
    checker.report(
        f"11c flow control across a Redis restart ({DOWN} s down, appendfsync always)",
        runs_spanning_the_outage=len(spanned),
        reruns=len(runs) - len(ids),
        live_overlaps=len(checker.overlaps(runs)[0]),
        jobs_lost=len(checker.lost(ids, runs, set())),
        recovered_by_the_jam_guard=sum(checker.recoveries(guard.output()).values()),
        flow_groups=in_groups,
        flow_slow_refill=in_bucket,
        groups_after=(groups.stats()["groups"], groups.stats()["groups_held"]),
        left_behind=checker.count_left_behind(groups.client, groups.keys),
    )
    # The runs holding the groups' slots ran through the outage (the jam guard's hold kept
    # them): had Redis forgotten them, the groups would have gone over their caps after it.
    assert len([run for run in spanned if run.queue == groups.name]) == cap * len(RESTART_GROUPS)
    # A run that ended while Redis was down does not know whether it still owned its job:
    # "finished" counts it (checker.py), its ack landed after the restart.
    assert not checker.lost(ids, runs, set())
    assert checker.overlaps(runs)[0] == []
    flow.assert_limits_held(groups, in_groups)
    # The bucket was empty at the kill and came back so: the stretch from the first burst to
    # after the restart holds no second burst.
    flow.assert_limits_held(bucket, in_bucket, met=False)
    assert groups.stats()["groups"] == 0
    assert checker.count_left_behind(groups.client, groups.keys) == 0
