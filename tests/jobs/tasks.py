"""Tasks the tests run on real workers; each records what happened in Redis.

The log is a Redis list per test run: "start <id> <token>" and "end <id> <token>" entries, so
that a checker can see overlaps and re-runs even when a worker process is killed.
"""

import os
import signal
import time

import redis

from django_convoy import convoy_processor, convoy_task, current_job, still_owner

LOG_KEY = "testlog"


def _log(event: str, **extra: object) -> None:
    job = current_job()
    client = redis.Redis.from_url(os.environ["CONVOY_TEST_REDIS_URL"])
    client.rpush(LOG_KEY, f"{event} {job.id} {job.token} {job.attempt} {extra or ''}".strip())


@convoy_task(queue="default", job_id=lambda key, sleep=0.0: f"rec-{key}")
def record(key: str, sleep: float = 0.0) -> str:
    _log("start")
    time.sleep(sleep)
    _log("end")
    return key


@convoy_task(queue="fast", job_id=lambda key, sleep: f"slow-{key}")
def slow(key: str, sleep: float) -> None:
    _log("start")
    time.sleep(sleep)
    _log("end", owner=still_owner())


@convoy_task(queue="crashy", job_id=lambda key, sleep: f"crashy-{key}")
def crashy(key: str, sleep: float) -> None:
    _log("start")
    time.sleep(sleep)
    _log("end")


@convoy_task(queue="fast", job_id=lambda key: f"crash-{key}")
def crash_self(key: str) -> None:
    """Kill the process running it, as a segfault or the OOM killer would."""
    _log("start", pid=os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


@convoy_task(queue="retrying")
def flaky(key: str, failures: int) -> None:
    job = current_job()
    _log("start")
    if job.attempt <= failures:
        raise RuntimeError(f"flaky {key} failing attempt {job.attempt}")
    _log("end")


@convoy_task(queue="default")
def boom(message: str) -> None:
    raise ValueError(message)


@convoy_task(queue="default")
def add(a: int, b: int) -> int:
    return a + b


@convoy_processor("default")
def process_default(job_id: str, payload: object) -> None:
    _log("plain", payload=payload)


@convoy_task(queue="crashy", job_id=lambda key, seconds: f"watch-{key}")
def watch_cancel(key: str, seconds: float) -> None:
    """Run for ``seconds``, stopping as soon as the run is cancelled (check_cancelled)."""
    _log("start")
    job = current_job()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if job.cancelled:
            _log("cancelled")
        job.check_cancelled()
        time.sleep(0.02)
    _log("end")


@convoy_task(queue="default", job_id=lambda key: f"self-cancel-{key}")
def cancel_self(key: str) -> bool:
    """Cancel its own job, then report whether the run sees it (no worker: from Redis)."""
    from django_convoy import get_queue

    job = current_job()
    get_queue(job.queue).cancel(job.id)
    return job.cancelled


@convoy_task(queue="default", max_attempts=3, backoff=0, retry_on=(OSError,))
def picky(key: str, error: str) -> None:
    """Fail with ``error`` ("os" or "value"): only an OSError is retried, up to 3 runs."""
    _log("start")
    raise OSError(key) if error == "os" else ValueError(key)


@convoy_task(queue="default", timeout=0.3, max_attempts=2, backoff=0)
def overrun(key: str) -> None:
    """Take longer than its own timeout (the queue's JOB_TIMEOUT would let it be)."""
    _log("start")
    time.sleep(1.5)


@convoy_task(queue="default", expires=1)
def perishable(key: str) -> None:
    _log("start")
