"""Django tasks the backend tests run: the contract's (after Django's own tests/tasks/tasks.py)
and convoy's (unique ids, retries, timeouts, a worker killed mid-task)."""

import os
import threading
import time
from datetime import datetime

import redis

try:
    from django.tasks import TaskContext, task
except ImportError:
    from django_tasks import TaskContext, task

LOG_KEY = "djtasklog"
# Lets a test hold a task mid-run in an in-process worker (see gated).
release = threading.Event()


def log(entry: str) -> None:
    """Record what a task did in the suite's private Redis (readable from any process)."""
    redis.Redis.from_url(os.environ["CONVOY_TEST_REDIS_URL"]).rpush(LOG_KEY, entry)


# -- the contract's ------------------------------------------------------------------------


@task()
def noop_task(*args, **kwargs):
    return None


@task()
async def noop_task_async(*args, **kwargs):
    return None


@task()
def calculate_meaning_of_life():
    return 42


@task()
async def calculate_meaning_of_life_async():
    return 42


@task()
def failing_task_value_error():
    raise ValueError("This Task failed due to ValueError")


@task()
def failing_task_system_exit():
    raise SystemExit("This Task failed due to SystemExit")


@task()
def complex_exception():
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value():
    return {"at": datetime.now()}


@task(takes_context=True)
def get_task_id(context):
    return context.task_result.id


@task(takes_context=True)
def check_context(context, attempt):
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt


# -- convoy's ------------------------------------------------------------------------------


@task(
    queue_name="monsterTrucks",
    job_id=lambda truck_id, **kwargs: f"truck-{truck_id}",
    if_processing="rerun",
)
def wash_truck(truck_id, gate=False):
    log(f"wash {truck_id}")
    if gate:
        release.wait(10)
    return f"truck {truck_id} is clean"


@task(queue_name="monsterTrucks", job_id=lambda truck_id, **kwargs: f"inspect-{truck_id}")
def inspect_truck(truck_id, gate=False):
    if gate:
        release.wait(10)
    return truck_id


@task()
def add(a, b):
    return a + b


@task(queue_name="retrying", takes_context=True)
def flaky(context, failures):
    if context.attempt <= failures:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


@task(queue_name="fast")
def hang(seconds):
    time.sleep(seconds)


@task(queue_name="crashy", takes_context=True)
def survive_a_crash(context, seconds):
    """Hang on the first attempt (its worker is killed then); return the attempt after."""
    log(f"start {context.attempt} {context.task_result.worker_ids[-1]}")
    if context.attempt == 1:
        time.sleep(seconds)
    return context.attempt


@task(takes_context=True)
def held_first_time(context):
    """Wait for ``release`` on the first attempt only: its worker loses the lease meanwhile."""
    if context.attempt == 1:
        release.wait(10)
    return f"attempt {context.attempt}"


@task(queue_name="retrying", takes_context=True, max_attempts=2, retry_on=(OSError,))
def picky(context, error):
    """Fail with ``error``: the task's own policy retries an OSError once, nothing else."""
    raise OSError(context.attempt) if error == "os" else ValueError(context.attempt)
