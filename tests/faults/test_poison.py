"""Scenario 7: a poison job, one that kills the process running it every time.

With ``--pool threads`` that process is the worker, at its first MAX_JAMS starts: each costs a
worker (started again by the test, as a supervisor would) and a jam, for the poison and for the
jobs running beside it, which cannot be told apart. A job's last chance, its run after
MAX_JAMS jams, runs in quarantine, in a child of the worker: the poison kills only that child
and fails as crashed, after exactly max(MAX_JAMS + 1, MAX_ATTEMPTS) starts, while a neighbour
completes. With ``--pool processes`` the poison only ever kills a child: the worker survives,
the job fails as crashed after exactly MAX_ATTEMPTS starts. Either way every other job of the
queue completes and none fails.
"""

from __future__ import annotations

import time

import pytest

from . import checker
from .cluster import Cluster, in_parallel, outcome
from .queues import FAULT_QUEUES

CONFIG = FAULT_QUEUES["faults-poison"]
# pool, workers, concurrency of each, other jobs (the last case: a neighbour that always runs
# beside the poison, claimed with it by the one worker every time)
CASES = {
    "threads": ("threads", 2, 1, 20),
    "threads-x2": ("threads", 2, 2, 20),
    "threads-pair": ("threads", 1, 2, 1),
    "processes": ("processes", 2, 1, 20),
}


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


def poison(cluster: Cluster, pool: str, count: int, concurrency: int, others_count: int) -> None:
    queue = cluster.queue("faults-poison")
    others = [f"other-{i}" for i in range(others_count)]
    queue.add_job("poison", {"sleep": 0.2, "crash": "always"})
    # A lone neighbour outlives the poison's start: it is always running when the poison kills.
    queue.add_jobs([(job_id, {"sleep": 0.05 if others_count > 1 else 1.0}) for job_id in others])
    cluster.jamguard("faults-poison", name="jamguard")

    def start(k: int):
        options = ("--pool", pool, "--concurrency", str(concurrency))
        return cluster.worker("faults-poison", name=f"worker{k}", options=options)

    workers = [start(k) for k in range(count)]
    restarts = 0
    began = time.monotonic()
    while True:
        job, stats = queue.get_job("poison"), queue.stats()
        if job and job.state == "failed" and stats["processed_total"] == len(others):
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
    jams = CONFIG["MAX_JAMS"]  # the poison's starts in workers, before its last chance
    expected = max(jams + 1, max_attempts) if pool == "threads" else max_attempts
    other_reruns = sum(started[job_id] for job_id in others) - len(others)
    checker.report(
        f"7 poison job (--pool {pool}, concurrency {concurrency} on each of {count} workers, "
        f"MAX_JAMS {CONFIG['MAX_JAMS']}, MAX_ATTEMPTS {max_attempts})",
        poison_starts=started["poison"],
        expected_starts=expected,
        poison_state=job.state,
        poison_error=f"{job.last_error['type']}: {job.last_error['message'][:90]}",
        workers_killed=restarts,
        other_jobs_completed=f"{len(checker.completed_ids(runs) & set(others))}/{len(others)}",
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
        assert restarts == jams  # its first starts, before quarantine
        # A kill costs the runs the worker was executing (the poison and its neighbours) and
        # at most those it had finished but not yet acked; none is jammed past its last chance.
        assert other_reruns <= restarts * concurrency
        assert max(started[job_id] for job_id in others) <= jams + 1
    else:
        assert restarts == 0  # only children died
        assert other_reruns == 0
    assert checker.count_left_behind(queue.client, queue.keys) == 0
