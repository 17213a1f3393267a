"""Cancel: a waiting job is removed; a running one loses its job at once (its fence revoked),
its worker lets go of it within a lease renewal, and the job is kept as cancelled."""

import json
import time

from django_convoy import JobCancelled, get_queue
from django_convoy.context import JobContext
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, job_state, test_log, wait_until
from tests.jobs import tasks

WORKER = "test-host.1.abc"


def logged(entry: str) -> bool:
    return any(line.startswith(entry) for line in test_log())


def claim_one(queue, job_id):
    (run,) = queue.claim(1, WORKER).runs
    assert run.id == job_id
    return run


def test_cancel_of_a_queued_job_removes_it_and_frees_its_id():
    queue = get_queue("default")
    queue.add_job("truck-1")
    assert queue.cancel("truck-1") == "queued"
    assert queue.get_job("truck-1") is None
    assert queue.add_job("truck-1").state == "queued"


def test_cancel_of_a_scheduled_job_removes_it():
    queue = get_queue("default")
    queue.add_job("truck-2", delay=60)
    assert queue.cancel("truck-2") == "scheduled"
    assert queue.get_job("truck-2") is None
    assert queue.stats()["scheduled"] == 0


def test_cancel_of_no_job_or_a_failed_one_returns_none():
    queue = get_queue("default")
    assert queue.cancel("nobody") is None
    queue.add_job("broken")
    run = claim_one(queue, "broken")
    assert queue.fail(run, {"type": "x", "message": "y"}, final=True) == "failed"
    assert queue.cancel("broken") is None
    assert queue.get_job("broken").last_error["type"] == "x"


def test_cancel_of_a_processing_run_revokes_its_fence_in_the_same_step():
    queue = get_queue("default")
    queue.add_job("truck-3", if_processing="rerun")
    run = claim_one(queue, "truck-3")
    queue.add_job("truck-3", if_processing="rerun")  # a pending rerun is dropped too
    assert queue.cancel("truck-3", by="alice") == "processing"
    assert not queue.still_owns(run.id, run.token)
    assert queue.renew([(run.id, run.token)]) == [0]
    assert queue.keep_result(run, 42) is False
    assert queue.ack([(run.id, run.token)]) == [0]
    assert queue.fail(run, {"type": "x", "message": "late"}) == "stale"
    job = queue.get_job("truck-3")
    assert (job.state, job.attempts, job.rerun_pending) == ("failed", 1, False)
    error = job.last_error
    assert error["type"] == "django_convoy.exceptions.JobCancelled"
    assert (error["reason"], error["cancelled_by"], error["attempt"]) == ("cancelled", "alice", 1)
    assert error["message"] == "cancelled by alice while processing"
    assert job.result is None
    assert queue.add_job("truck-3").state == "queued"  # a fresh run, as after a failure


def test_cancel_of_a_jammed_job_keeps_it_as_cancelled():
    queue = get_queue("default")
    queue.add_job("truck-4")
    run = claim_one(queue, "truck-4")
    queue.client.zadd(queue.keys.processing, {run.id: 0}, xx=True)
    assert queue.cancel("truck-4") == "jammed"
    assert queue.jam_guard() == []
    job = queue.get_job("truck-4")
    assert job.state == "failed"
    assert job.last_error["message"] == "cancelled while jammed"


def test_a_cancelled_job_is_kept_for_failed_ttl():
    queue = get_queue("default")
    queue.add_job("old")
    claim_one(queue, "old")
    queue.cancel("old")
    queue.client.zadd(queue.keys.failed, {"old": 1}, xx=True)  # cancelled long ago
    queue.add_job("other")
    claim_one(queue, "other")
    queue.cancel("other")  # trims the failed records past FAILED_TTL, as a failure does
    assert queue.get_job("old") is None


def test_convoy_task_cancel_derives_the_id_from_the_arguments():
    tasks.slow.enqueue("x", 1)
    assert tasks.slow.cancel("x", 1) == "queued"
    assert tasks.slow.cancel("x", 1) is None


def test_check_cancelled_raises_job_cancelled_once_the_run_lost_its_job():
    queue = get_queue("default")
    queue.add_job("truck-5")
    run = claim_one(queue, "truck-5")
    context = JobContext(run.queue, run.id, run.attempt, run.token)
    assert not context.cancelled
    context.check_cancelled()
    queue.cancel("truck-5")
    assert not context.cancelled  # asked Redis under CANCEL_CHECK_SECONDS ago: not again yet
    context._lost.checked = float("-inf")
    assert context.cancelled
    try:
        context.check_cancelled()
    except JobCancelled as exc:
        assert "'truck-5'" in str(exc)
    else:
        raise AssertionError("check_cancelled did not raise")


def test_a_drained_job_that_is_cancelled_is_not_acked():
    tasks.cancel_self.enqueue("a")
    result = drain("default")
    assert result.processed == result.failed == ()
    job = get_queue("default").get_job("self-cancel-a")
    assert job.state == "failed" and job.last_error["reason"] == "cancelled"
    assert job.result is None  # its return value (True: it saw the cancel) was refused


def test_a_run_that_checks_stops_and_its_worker_takes_the_next_job():
    queue = get_queue("crashy")  # LEASE 1 s: renewed every 1/3 s
    tasks.watch_cancel.enqueue("a", 30)
    with ThreadedWorker("crashy", concurrency=1, jam_guard=False):
        wait_until(lambda: logged("start watch-a"), timeout=20)
        began = time.monotonic()
        assert tasks.watch_cancel.cancel("a", 30) == "processing"
        wait_until(lambda: logged("cancelled watch-a"), timeout=5)
        assert time.monotonic() - began < 2
        tasks.crashy.enqueue("next", 0)
        wait_until(lambda: logged("end crashy-next"), timeout=10)
    assert not logged("end watch-a")
    assert job_state(queue, "watch-a") == "failed"


def test_a_run_that_ignores_the_cancel_has_its_slot_freed_and_its_ack_refused():
    queue = get_queue("crashy")
    tasks.crashy.enqueue("deaf", 2.5)  # never checks
    with ThreadedWorker("crashy", concurrency=1, jam_guard=False):
        wait_until(lambda: logged("start crashy-deaf"), timeout=20)
        assert queue.cancel("crashy-deaf") == "processing"
        tasks.crashy.enqueue("next", 0)
        wait_until(lambda: logged("end crashy-next"), timeout=2)  # before deaf ends
        assert not logged("end crashy-deaf")
        assert tasks.crashy.enqueue("deaf", 0).state in ("queued", "processing")
        wait_until(lambda: len([e for e in test_log() if e.startswith("end crashy-deaf")]) == 2)
    assert queue.get_job("crashy-deaf") is None  # the second run's ack stood, not the first's
    assert queue.stats()["failed"] == 0


def test_a_process_pool_run_has_its_child_killed():
    queue = get_queue("crashy")
    tasks.crashy.enqueue("hung", 60)
    with ThreadedWorker("crashy", pool="processes", concurrency=1, jam_guard=False):
        wait_until(lambda: logged("start crashy-hung"), timeout=30)
        assert queue.cancel("crashy-hung") == "processing"
        tasks.crashy.enqueue("next", 0)
        wait_until(lambda: logged("end crashy-next"), timeout=20)
    assert not logged("end crashy-hung")
    assert json.loads(queue.client.hget(queue.keys.errors, "crashy-hung"))["reason"] == (
        "cancelled"
    )
