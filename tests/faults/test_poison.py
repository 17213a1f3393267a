"""Scenario 7: a poison job, one that kills the process running it every time.

With ``--pool threads`` that process is the worker, at its first start: it costs a worker
(started again by the test, as a supervisor would) and a jam, for the poison and for the jobs
running beside it, which cannot be told apart yet. Back from the jam, each of them runs in
quarantine (the worker's quarantine child, one at a time): the poison kills only that child
and fails as crashed after exactly max(2, MAX_ATTEMPTS) starts, while its neighbours complete
there. With ``--pool processes`` the poison only ever kills a child: the worker survives, the
job fails as crashed after exactly MAX_ATTEMPTS starts. Either way every other job of the
queue completes, none fails, and none is jammed more than once.
"""

from __future__ import annotations

import time

import pytest

from . import checker
from .cluster import Cluster, in_parallel, outcome
from .queues import FAULT_QUEUES

CONFIG = FAULT_QUEUES["faults-poison"]
OTHERS = 20


# pool, concurrency of each of the two workers
CASES = {"threads": ("threads", 1), "threads-x2": ("threads", 2), "processes": ("processes", 1)}


@pytest.fixture(scope="module")
def poisonings(tmp_path_factory):
    """Every case side by side, each with a redis-server of its own."""

    roots = {case: tmp_path_factory.mktemp(case) for case in CASES}  # not in threads

    def scenario(case: str) -> None:
        cluster = Cluster(roots[case])
        try:
            poison(cluster, *CASES[case])
        finally:
            cluster.close()

    return in_parallel({case: lambda case=case: scenario(case) for case in CASES})


@pytest.mark.parametrize("case", CASES)
def test_poison_job_fails_after_a_fixed_number_of_starts_and_spares_the_others(poisonings, case):
    outcome(poisonings, case)


def poison(cluster: Cluster, pool: str, concurrency: int) -> None:
    queue = cluster.queue("faults-poison")
    others = [f"other-{i}" for i in range(OTHERS)]
    queue.add_job("poison", {"sleep": 0.2, "crash": "always"})
    queue.add_jobs([(job_id, {"sleep": 0.05}) for job_id in others])
    cluster.jamguard("faults-poison", name="jamguard")

    def start(k: int):
        options = ("--pool", pool, "--concurrency", str(concurrency))
        return cluster.worker("faults-poison", name=f"worker{k}", options=options)

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
    max_attempts = CONFIG["MAX_ATTEMPTS"]
    expected = max(2, max_attempts) if pool == "threads" else max_attempts
    other_reruns = sum(started[job_id] for job_id in others) - OTHERS
    checker.report(
        f"7 poison job (--pool {pool}, concurrency {concurrency} on each of 2 workers, "
        f"MAX_JAMS {CONFIG['MAX_JAMS']}, MAX_ATTEMPTS {max_attempts})",
        poison_starts=started["poison"],
        expected_starts=expected,
        poison_state=job.state,
        poison_error=f"{job.last_error['type']}: {job.last_error['message'][:90]}",
        workers_killed=restarts,
        other_jobs_completed=f"{len(checker.completed_ids(runs) & set(others))}/{OTHERS}",
        other_jobs_rerun=other_reruns,
        other_jobs_started_at_most=max(started[job_id] for job_id in others),
        failed_total=stats["failed_total"],
        left_behind=checker.count_left_behind(queue.client, queue.keys),
    )
    assert started["poison"] == expected
    assert job.last_error["reason"] == "crash"  # it killed a child: told from the others
    assert stats["failed_total"] == 1
    assert checker.completed_ids(runs) >= set(others)
    if pool == "threads":
        assert restarts == 1  # its first start, before anything could tell it apart
        # That kill costs the runs the worker was executing (the poison and its neighbours)
        # and at most those it had finished but not yet acked; each is jammed once, no more.
        assert other_reruns <= restarts * concurrency
        assert max(started[job_id] for job_id in others) <= 2
    else:
        assert restarts == 0  # only children died
        assert other_reruns == 0
    assert checker.count_left_behind(queue.client, queue.keys) == 0
