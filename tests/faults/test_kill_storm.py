"""Scenario 3: a kill storm (``storm.py``) on one queue, and the SIGKILL of a worker whose
jobs run in child processes."""

from __future__ import annotations

import signal
import time

import pytest

from . import checker
from .storm import kill_storm


def test_kill_storm_loses_nothing_and_never_runs_a_job_twice_at_once(cluster):
    kill_storm(cluster, [cluster.queue("faults")], jobs=200, sleep=0.3)


@pytest.mark.slow
def test_soak_kill_storm_thousands_of_jobs(cluster):
    kill_storm(cluster, [cluster.queue("faults")], jobs=4000, sleep=0.05)


def test_sigkill_of_a_process_pool_worker_ends_the_jobs_of_its_children(cluster):
    """A child that outlived its SIGKILLed worker would run its job on while the jam guard hands
    the same id to another worker: two executions at once (one fenced, but still running)."""
    queue = cluster.queue("faults")
    queue.add_job("orphaned", {"sleep": 3.0})
    worker = cluster.worker("faults", options=("--pool", "processes", "--concurrency", "1"))
    (run,) = cluster.wait_for(cluster.runs, 60, "the child started the job")
    worker.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    worker.wait()
    time.sleep(4.0)  # past the end of the job's own three seconds
    (run,) = cluster.runs()
    carried_on = None if run.end is None else round(run.end / 1e9 - killed_at, 2)
    checker.report(
        "3b SIGKILL of a --pool processes worker",
        child_pid_differs_from_worker=run.pid != worker.pid,
        job_ran_on_after_its_worker_died_s=carried_on,
    )
    assert run.pid != worker.pid
    assert run.end is None, f"the orphaned child ran its job {carried_on} s past its worker"
