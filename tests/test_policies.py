"""Per-task policies: a task's max_attempts, timeout, backoff, retry_on and expires override
its queue's settings; each job carries them, so whichever worker runs it applies them."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from django_convoy import InvalidJob, convoy_task, get_queue
from django_convoy.exceptions import JobTimeout
from django_convoy.retries import failure_is_final
from django_convoy.store import NO_POLICY, Policy, policy_of
from django_convoy.store.bodies import split_body
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, test_log, wait_until
from tests.jobs import tasks


def starts(prefix: str) -> int:
    return sum(1 for line in test_log() if line.startswith(f"start {prefix}"))


def test_the_policy_travels_in_the_body_and_is_read_without_the_payload():
    tasks.picky.enqueue("a", "os")
    job_id = tasks.picky.id_for("a", "os")
    queue = get_queue("default")
    body = queue.client.hget(queue.keys.jobs, job_id).split("|", 4)[4]
    assert body.startswith('{"task":"tests.jobs.tasks.picky","policy":{"max_attempts":3,')
    assert policy_of(body) == Policy(max_attempts=3, backoff=0.0, retry_on=("builtins.OSError",))
    assert split_body(body, complete=True) == (
        "tests.jobs.tasks.picky",
        json.dumps({"args": ["a", "os"], "kwargs": {}}, separators=(",", ":")),
    )
    assert queue.get_job(job_id).payload == {"args": ["a", "os"], "kwargs": {}}
    assert policy_of('{"task":"x","payload":1}') is NO_POLICY
    assert policy_of('{"task":"x","policy":[1],"payload":1}') is NO_POLICY


def test_retry_on_retries_the_listed_types_up_to_the_tasks_max_attempts():
    tasks.picky.enqueue("a", "os")  # the queue says MAX_ATTEMPTS 1; the task 3
    result = drain("default")
    job_id = tasks.picky.id_for("a", "os")
    assert result.retried == (job_id, job_id) and result.failed == (job_id,)
    assert get_queue("default").get_job(job_id).attempts == 3


def test_an_exception_outside_retry_on_fails_at_once():
    tasks.picky.enqueue("b", "value")
    result = drain("default")
    job_id = tasks.picky.id_for("b", "value")
    assert (result.retried, result.failed) == ((), (job_id,))
    assert result.errors[job_id] == "builtins.ValueError: b"


def test_the_tasks_timeout_overrides_job_timeout_on_a_worker():
    queue = get_queue("default")  # JOB_TIMEOUT: the default, ten minutes
    tasks.overrun.enqueue("t")
    job_id = tasks.overrun.id_for("t")
    with ThreadedWorker("default", concurrency=2):
        wait_until(lambda: (job := queue.get_job(job_id)) and job.state == "failed", timeout=10)
    job = queue.get_job(job_id)
    assert job.attempts == 2  # retried once: a timeout is retried while attempts are left
    assert job.last_error["reason"] == "timeout"
    assert job.last_error["type"] == "django_convoy.exceptions.JobTimeout"
    assert "ran longer than its task's timeout (0.3 s)" in job.last_error["message"]


def test_job_timeout_is_a_timeout_error_that_retry_on_can_name():
    assert issubclass(JobTimeout, TimeoutError)
    timeout = JobTimeout("late")
    assert not failure_is_final(timeout, 1, 3)
    assert not failure_is_final(timeout, 1, 3, ["builtins.TimeoutError"])
    assert failure_is_final(timeout, 1, 3, ["builtins.ValueError"])
    assert failure_is_final(timeout, 3, 3)


def test_expires_drops_a_job_not_started_by_then_as_failed_expired():
    queue = get_queue("default")
    queue.pause()  # paused past its expiry
    tasks.perishable.enqueue("p")
    job_id = tasks.perishable.id_for("p")
    time.sleep(1.1)
    queue.resume()
    result = drain("default")
    assert result.failed == (job_id,)
    job = queue.get_job(job_id)
    assert (job.state, job.last_error["reason"]) == ("failed", "expired")
    assert job.last_error["type"] == "django_convoy.exceptions.JobExpired"
    assert starts(job_id) == 0  # never run


def test_a_job_started_in_time_runs():
    tasks.perishable.enqueue("q")
    assert drain("default").processed == (tasks.perishable.id_for("q"),)


def test_expires_may_be_a_datetime():
    @convoy_task(queue="default", expires=datetime.now(UTC) - timedelta(seconds=1))
    def stale() -> None:
        raise AssertionError("an expired job ran")

    stale.enqueue()
    result = drain("default")
    assert result.errors[stale.id_for()].startswith("django_convoy.exceptions.JobExpired")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an int >= 1, not 0"),
        ({"timeout": -1}, "timeout must be a number of seconds >= 0"),
        ({"backoff": "soon"}, "backoff must be a number of seconds >= 0"),
        ({"retry_on": ("OSError",)}, "retry_on must be an exception class or a tuple of them"),
        ({"expires": 0}, "expires must be more than 0 seconds"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_task_and_option(options, message):
    with pytest.raises(InvalidJob, match=message) as caught:
        convoy_task(queue="default", **options)(lambda: None)
    assert "Task tests.test_policies." in str(caught.value)


def test_a_task_without_a_policy_writes_the_body_as_before():
    tasks.add.enqueue(1, 2)
    queue = get_queue("default")
    body = queue.client.hget(queue.keys.jobs, tasks.add.id_for(1, 2)).split("|", 4)[4]
    assert body == '{"task":"tests.jobs.tasks.add","payload":{"args":[1,2],"kwargs":{}}}'


def test_a_schedules_tick_of_a_task_carries_its_policy():
    from django_convoy.schedules.config import Schedule
    from django_convoy.schedules.scheduler import tick_body
    from django_convoy.schedules.ticks import Every

    schedule = Schedule("picky", tasks.picky.name, "default", Every(60), args=["s", "os"])
    body, result = tick_body(schedule)
    assert result is None
    assert policy_of(body).max_attempts == 3
