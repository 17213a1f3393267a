"""Scenario 8: SIGTERM mid-job, then SIGKILL during the grace period (an impatient supervisor).

The worker holds four running jobs, with more queued. SIGTERM makes it stop claiming and wait
up to ``--grace`` for its jobs; SIGKILL arrives one second into the grace, before they end and
before it could hand them back. Nothing may be lost: the jobs it held are recovered by the jam
guard and run by another worker, the queued ones were never taken.
"""

from __future__ import annotations

import signal
import time

from . import checker
from .cluster import Cluster

HELD, QUEUED = 4, 10


def test_sigkill_during_the_grace_period_loses_nothing(cluster: Cluster):
    queue = cluster.queue("faults")
    held = [f"held-{i}" for i in range(HELD)]
    waiting = [f"waiting-{i}" for i in range(QUEUED)]
    queue.add_jobs([(job_id, {"sleep": 2.5}) for job_id in held])
    queue.add_jobs([(job_id, {"sleep": 0.05}) for job_id in waiting])
    first = cluster.worker("faults", name="terminated", options=("--grace", "10"))
    cluster.wait_for(lambda: len(cluster.runs()) == HELD, 60, "the worker runs its four jobs")
    first.signal(signal.SIGTERM)
    time.sleep(1.0)
    claimed_during_grace = len(cluster.runs()) - HELD
    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait()
    second = cluster.worker("faults", name="next")
    cluster.jamguard("faults")
    cluster.wait_for(
        lambda: queue.stats()["processed_total"] == HELD + QUEUED, 60, "every job done once"
    )
    cluster.stop_all()

    runs = cluster.runs()
    ids = held + waiting
    restarted = [
        run.start / 1e9 - killed_at
        for run in runs
        if run.worker_pid == second.pid and run.id in held
    ]
    checker.report(
        "8 SIGTERM mid-job, SIGKILL 1 s into a 10 s grace",
        jobs_held_at_sigterm=HELD,
        claimed_during_grace=claimed_during_grace,
        lost=len(checker.lost(ids, runs, set())),
        reruns=len(runs) - len(ids),
        live_overlaps=len(checker.overlaps(runs)[0]),
        held_jobs_restarted_within_s=round(max(restarted, default=0), 2),
        left_behind=checker.count_left_behind(queue.client, queue.keys),
    )
    assert claimed_during_grace == 0  # a stopping worker takes nothing new
    assert not checker.lost(ids, runs, set())
    assert len(runs) == len(ids) + HELD  # exactly the four killed runs ran again
    assert checker.starts(runs) == {**dict.fromkeys(held, 2), **dict.fromkeys(waiting, 1)}
    assert not checker.overlaps(runs)[0]
    assert checker.count_left_behind(queue.client, queue.keys) == 0
