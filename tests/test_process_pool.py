"""--pool processes: a hung job's child is killed at JOB_TIMEOUT, a crashed child is replaced."""

import os

from django_convoy import get_queue
from django_convoy.worker import Worker
from tests.helpers import ThreadedWorker, job_state, test_log, wait_until
from tests.jobs import tasks


def ended(job_id: str) -> bool:
    return any(entry.startswith(f"end {job_id} ") for entry in test_log())


def test_jobs_run_in_child_processes_not_in_the_worker():
    tasks.crash_self.enqueue("probe-not-run")  # would kill the test process on a thread
    tasks.slow.enqueue("a", 0.01)
    Worker(["fast"], pool="processes", concurrency=1, burst=True).run()
    assert ended("slow-a")
    job = get_queue("fast").get_job("crash-probe-not-run")
    assert job.state == "failed"
    assert job.last_error["reason"] == "crash"
    assert "killed by SIGKILL" in job.last_error["message"]
    start = next(e for e in test_log() if e.startswith("start crash-probe-not-run"))
    assert f"'pid': {os.getpid()}" not in start


def test_hung_job_is_killed_at_its_timeout_and_the_next_job_runs():
    queue = get_queue("fast")  # JOB_TIMEOUT 0.5 s
    tasks.slow.enqueue("hung", 30)
    with ThreadedWorker("fast", pool="processes", concurrency=1):
        wait_until(lambda: job_state(queue, "slow-hung") == "failed", timeout=20)
        assert queue.get_job("slow-hung").last_error["reason"] == "timeout"
        tasks.slow.enqueue("next", 0.01)
        wait_until(lambda: ended("slow-next"), timeout=20)
    assert not ended("slow-hung")  # killed, not left running
