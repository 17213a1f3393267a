"""What a job's code returns is kept (bounded, JSON, for RESULT_TTL) and read back by get_job."""

import time

import pytest

from django_convoy import get_queue
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, wait_until
from tests.jobs import tasks


@pytest.fixture
def queues(settings):
    """The test queues, and "brief" (results kept 0.2 s), "small" (30 bytes) and "forgetful"
    (none kept)."""
    settings.CONVOY = {
        **settings.CONVOY,
        "QUEUES": {
            **settings.CONVOY["QUEUES"],
            "brief": {"RESULT_TTL": 0.2},
            "small": {"MAX_RESULT_BYTES": 30},
            "forgetful": {"RESULT_TTL": 0},
        },
    }


def test_a_tasks_return_value_is_kept_and_get_job_reads_it_as_done():
    job_id = tasks.add.enqueue(2, 3).id
    assert drain("default").processed == (job_id,)
    job = get_queue("default").get_job(job_id)
    assert (job.state, job.payload, job.attempts) == ("done", None, 1)
    assert (job.result.value, job.result.kept, job.result.attempt) == (5, True, 1)
    assert job.result.worker.startswith("drain.")
    assert job.result.finished_at >= job.result.started_at
    assert 0 <= job.result.duration < 5
    assert get_queue("default").add_job(job_id).added  # done: its id is free


def test_a_run_that_returns_none_keeps_nothing():
    tasks.record.enqueue("quiet")
    get_queue("default").add_job("plain")  # the processor returns None
    drain("default")
    assert get_queue("default").get_job("plain") is None


def test_a_live_job_shows_what_its_ids_last_run_returned():
    job_id = tasks.add.enqueue(1, 1).id
    drain("default")
    tasks.add.enqueue(1, 1)
    job = get_queue("default").get_job(job_id)
    assert (job.state, job.result.value) == ("queued", 2)


def test_a_worker_keeps_the_value(redis_client):
    with ThreadedWorker("default"):
        job_id = tasks.add.enqueue(20, 22).id
        job = wait_until(lambda: get_queue("default").get_job(job_id).result)
    assert job.value == 42 and job.worker.count(".") == 2  # host.pid.random


def test_a_value_that_is_not_json_is_not_kept_and_the_run_succeeds_saying_why():
    queue = get_queue("default")
    queue.add_job("x")
    (run,) = queue.claim(1, "w").runs
    assert queue.keep_result(run, {1, 2})
    assert queue.ack([(run.id, run.token)]) == [1]
    result = queue.get_job("x").result
    assert (result.value, result.kept) == (None, False)
    assert result.note == "not JSON (TypeError: Object of type set is not JSON serializable)"


def test_a_value_over_max_result_bytes_is_not_kept(queues):
    queue = get_queue("small")
    queue.add_job("x")
    (run,) = queue.claim(1, "w").runs
    queue.keep_result(run, "x" * 40)
    result = queue.get_job("x").result
    assert not result.kept
    assert result.note == "too large: 42 bytes of JSON, over this queue's MAX_RESULT_BYTES (30)"


def test_a_result_is_kept_for_result_ttl_and_0_keeps_none(queues):
    for name in ("brief", "forgetful"):
        queue = get_queue(name)
        queue.add_job("x")
        (run,) = queue.claim(1, "w").runs
        queue.keep_result(run, "value")
        queue.ack([(run.id, run.token)])
    assert get_queue("brief").get_job("x").result.value == "value"
    assert get_queue("forgetful").get_job("x") is None
    time.sleep(0.3)
    assert get_queue("brief").get_job("x") is None


def test_a_run_that_lost_its_job_cannot_keep_a_result():
    queue = get_queue("fast")
    queue.add_job("x")
    (run,) = queue.claim(1, "w").runs
    queue.fail(run, {"type": "E", "message": "timed out"}, final=True)  # a timeout, say
    assert not queue.keep_result(run, "late")
    assert queue.get_job("x").result is None
