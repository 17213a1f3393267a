"""Scenario 7: a poison job, one that kills the process running it every time.

With ``--pool threads`` that process is the worker: each start costs a worker (started again
by the test, as a supervisor would) and a jam, and the job must fail after exactly
MAX_JAMS + 1 starts, as jammed. With ``--pool processes`` it is only a child: the worker
survives, the job fails as crashed after exactly MAX_ATTEMPTS starts. Either way the other
jobs of the queue all complete, none fails.
"""

from __future__ import annotations

import time

import pytest

from . import checker
from .cluster import Cluster, in_parallel, outcome
from .queues import FAULT_QUEUES

CONFIG = FAULT_QUEUES["faults-poison"]
OTHERS = 20


POOLS = ["threads", "processes"]


@pytest.fixture(scope="module")
def poisonings(tmp_path_factory):
    """Both pools side by side, each with a redis-server of its own."""

    roots = {pool: tmp_path_factory.mktemp(pool) for pool in POOLS}  # not in threads

    def scenario(pool: str) -> None:
        cluster = Cluster(roots[pool])
        try:
            poison(cluster, pool)
        finally:
            cluster.close()

    return in_parallel({pool: lambda pool=pool: scenario(pool) for pool in POOLS})


@pytest.mark.parametrize("pool", POOLS)
def test_poison_job_fails_after_a_fixed_number_of_starts_and_spares_the_others(poisonings, pool):
    outcome(poisonings, pool)


def poison(cluster: Cluster, pool: str) -> None:
    queue = cluster.queue("faults-poison")
    others = [f"other-{i}" for i in range(OTHERS)]
    queue.add_job("poison", {"sleep": 0.2, "crash": "always"})
    queue.add_jobs([(job_id, {"sleep": 0.05}) for job_id in others])
    cluster.jamguard("faults-poison", name="jamguard")

    def start(k: int):
        return cluster.worker("faults-poison", name=f"worker{k}", options=("--pool", pool))

    workers = [start(0), start(1)]
    restarts = 0
    began = time.monotonic()
    while True:
        job, stats = queue.get_job("poison"), queue.stats()
        if job and job.state == "failed" and stats["processed_total"] == OTHERS:
            break
        assert time.monotonic() - began < 90, f"not settled: {job}, {stats}"
        for k, worker in enumerate(workers):
            if not worker.alive:  # a supervisor starts a worker the poison killed
                assert worker.popen.returncode == -9, worker.output()
                workers[k] = start(k)
                restarts += 1
        time.sleep(0.05)
    cluster.stop_all()

    runs = cluster.runs()
    started = checker.starts(runs)
    expected = CONFIG["MAX_JAMS"] + 1 if pool == "threads" else CONFIG["MAX_ATTEMPTS"]
    other_reruns = sum(started[job_id] for job_id in others) - OTHERS
    checker.report(
        f"7 poison job (--pool {pool}, MAX_JAMS {CONFIG['MAX_JAMS']}, "
        f"MAX_ATTEMPTS {CONFIG['MAX_ATTEMPTS']})",
        poison_starts=started["poison"],
        expected_starts=expected,
        poison_state=job.state,
        poison_error=f"{job.last_error['type']}: {job.last_error['message'][:90]}",
        workers_killed=restarts,
        other_jobs_completed=f"{len(checker.completed_ids(runs) & set(others))}/{OTHERS}",
        other_jobs_rerun=other_reruns,
        failed_total=stats["failed_total"],
        left_behind=checker.count_left_behind(queue.client, queue.keys),
    )
    assert started["poison"] == expected
    assert stats["failed_total"] == 1
    assert checker.completed_ids(runs) >= set(others)
    if pool == "threads":
        assert job.last_error["type"] == "django_convoy.exceptions.JobJammed"
        assert restarts == expected
        # A kill costs the run the worker was executing (one slot: the poison) and at most
        # the other runs it had finished but not yet acked.
        assert other_reruns <= restarts
    else:
        assert job.last_error["reason"] == "crash"
        assert restarts == 0  # only children died
        assert other_reruns == 0
    assert checker.count_left_behind(queue.client, queue.keys) == 0
