"""Helpers shared by the core tests: run a worker in-process or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from django.conf import settings

from django_convoy.queue import Queue
from django_convoy.worker import Worker

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02):
    """Poll ``condition`` until it is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {condition}")


def job_state(queue, job_id: str) -> str | None:
    """The state of a job, or None when no job has that id."""
    job = queue.get_job(job_id)
    return job.state if job else None


class ThreadedWorker:
    """A Worker running on a thread of the test process, stopped at the end of the test."""

    def __init__(self, *queues: str, **options):
        self.worker = Worker(queues, **options)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc_info) -> None:
        self.worker.request_stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "worker did not stop"


def manage(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``manage.py`` as a real subprocess using the test settings and private Redis
    (``env``: variables to set on top)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def run_manage(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run ``manage.py`` to its end (one process: ``manage()`` itself starts it)."""
    process = manage(*args, **kwargs)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def test_log() -> list[str]:
    """The execution log the tasks in tests/jobs/tasks.py write."""
    client = redis.Redis.from_url(settings.CONVOY["REDIS_URL"], decode_responses=True)
    return client.lrange("testlog", 0, -1)


test_log.__test__ = False  # not a test, despite the name


def hand_off_request(queue, worker_id: str) -> tuple[float, int] | None:
    """A worker's standing request to be handed jobs of ``queue``: (its deadline in seconds,
    how many jobs it may still be handed), or None."""
    for member, score in queue.client.zrange(queue.keys.idle, 0, -1, withscores=True):
        if member.split("|", 1)[1] == worker_id:
            return score // 1000 / 1000, int(score % 1000)
    return None


def claims_of(monkeypatch) -> list[str]:
    """The ids every claim (with or without an ack) returns from now on."""
    claimed: list[str] = []
    claim, ack_and_claim = Queue.claim, Queue.ack_and_claim

    def counted_claim(self, *args, **kwargs):
        batch = claim(self, *args, **kwargs)
        claimed.extend(job.id for job in batch.runs)
        return batch

    def counted_ack_and_claim(self, *args, **kwargs):
        acks, batch = ack_and_claim(self, *args, **kwargs)
        claimed.extend(job.id for job in batch.runs)
        return acks, batch

    monkeypatch.setattr(Queue, "claim", counted_claim)
    monkeypatch.setattr(Queue, "ack_and_claim", counted_ack_and_claim)
    return claimed
