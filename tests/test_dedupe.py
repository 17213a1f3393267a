"""Dedupe modes beside if_processing: if_queued="replace" (a debounce) and hold_for (a
throttle), decided by the one add state machine (add_one), so adds, ticks and Django tasks
share them."""

import threading
import time

import pytest

from django_convoy import InvalidJob, get_queue
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, test_log, wait_until
from tests.jobs import tasks

WORKER = "test-host.1.abc"


@pytest.fixture
def queue():
    return get_queue("default")


def test_keep_is_the_default_a_waiting_jobs_payload_stands(queue):
    queue.add_job("t", {"v": 1})
    again = queue.add_job("t", {"v": 2})
    assert (again.added, again.state, again.replaced) == (False, "queued", False)
    assert queue.get_job("t").payload == {"v": 1}


def test_replace_replaces_a_queued_jobs_payload_and_keeps_its_place(queue):
    queue.add_job("first")
    queue.add_job("t", {"v": 1}, priority=5)
    again = queue.add_job("t", {"v": 2}, if_queued="replace")
    assert (again.added, again.state, again.replaced) == (False, "queued", True)
    job = queue.get_job("t")
    assert (job.payload, job.priority) == ({"v": 2}, 5)
    assert [run.id for run in queue.claim(2, WORKER).runs] == ["t", "first"]


def test_replace_with_a_delay_restarts_it_a_debounce(queue):
    queue.add_job("t", {"v": 1})
    again = queue.add_job("t", {"v": 2}, if_queued="replace", delay=30)
    assert (again.state, again.replaced) == ("scheduled", True)
    due = queue.get_job("t").due_at
    time.sleep(0.05)
    queue.add_job("t", {"v": 3}, if_queued="replace", delay=30)
    job = queue.get_job("t")
    assert (job.state, job.payload) == ("scheduled", {"v": 3})
    assert job.due_at > due  # the delay started again
    assert queue.stats()["queued"] == 0


def test_replace_leaves_a_processing_job_to_if_processing(queue):
    queue.add_job("t", {"v": 1})
    queue.claim(1, WORKER)
    again = queue.add_job("t", {"v": 2}, if_queued="replace")
    assert (again.added, again.state, again.replaced, again.rerun) == (
        False,
        "processing",
        False,
        False,
    )
    assert queue.get_job("t").payload == {"v": 1}


def test_hold_for_refuses_adds_for_that_long_after_the_job_ended(queue):
    assert queue.add_job("t", hold_for=0.5).added
    assert queue.add_job("t").state == "queued"  # live: the hold has not started
    (run,) = queue.claim(1, WORKER).runs
    assert queue.ack([(run.id, run.token)]) == [1]
    held = queue.add_job("t")
    assert (held.added, held.state) == (False, "held")
    assert queue.get_job("t") is None
    time.sleep(0.6)
    assert queue.add_job("t").added
    (run,) = queue.claim(1, WORKER).runs
    queue.ack([(run.id, run.token)])
    assert queue.add_job("t").added  # that add asked for no hold


def test_a_final_failure_starts_the_hold_too(queue):
    queue.add_job("t", hold_for=30)
    (run,) = queue.claim(1, WORKER).runs
    assert queue.fail(run, {"type": "x", "message": "y"}, final=True) == "failed"
    assert queue.add_job("t").state == "held"
    assert queue.get_job("t").state == "failed"


def test_a_job_deleted_before_it_ended_leaves_no_hold(queue):
    queue.add_job("t", hold_for=30)
    queue.delete_job("t")
    assert queue.add_job("t").added
    (run,) = queue.claim(1, WORKER).runs
    queue.ack([(run.id, run.token)])
    assert queue.add_job("t").added


def test_a_convoy_task_can_throttle_and_debounce():
    tasks.record.using(hold_for=30).enqueue("x")
    assert drain("default").processed == ("rec-x",)
    assert tasks.record.enqueue("x").state == "held"
    tasks.record.enqueue("y", 0.0)
    assert tasks.record.using(if_queued="replace").enqueue("y", 0.01).replaced


def test_bad_dedupe_options_are_refused(queue):
    with pytest.raises(InvalidJob, match="if_queued must be one of"):
        queue.add_job("t", if_queued="overwrite")
    with pytest.raises(InvalidJob, match="hold_for must be a number of seconds"):
        queue.add_job("t", hold_for=-1)
    assert queue.get_job("t") is None


def producers(count: int, work) -> list:
    results: list = []
    start = threading.Barrier(count)

    def run(k: int) -> None:
        start.wait()
        results.extend(work(k))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_replace_under_eight_contending_producers_keeps_one_job_per_id(queue):
    ids = [f"id-{n}" for n in range(50)]

    def work(k):
        return [
            (job_id, queue.add_job(job_id, {"by": k, "n": n}, if_queued="replace"))
            for n in range(5)
            for job_id in ids
        ]

    results = producers(8, work)
    assert sum(result.added for _, result in results) == len(ids)  # each id queued once
    assert all(result.added or result.replaced for _, result in results)
    assert queue.stats()["queued"] == len(ids)
    assert {job_id for job_id, _ in results} == set(ids)
    for job_id in ids:
        assert queue.get_job(job_id).payload["n"] == 4  # every producer's last add is n=4


def test_hold_for_under_eight_contending_producers_runs_each_id_once(queue):
    ids = [f"rec-{n}" for n in range(20)]

    def work(k):
        found = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for n in range(20):
                found.append(tasks.record.using(hold_for=60).enqueue(str(n)))
            time.sleep(0.01)
        return found

    with ThreadedWorker("default", concurrency=4):
        results = producers(8, work)
        wait_until(lambda: queue.stats()["queued"] + queue.stats()["processing"] == 0)
    assert sum(result.added for result in results) == len(ids)
    assert {result.state for result in results} <= {"queued", "processing", "held"}
    ends = [line.split()[1] for line in test_log() if line.startswith("end ")]
    assert sorted(ends) == sorted(ids)  # each id ran once: every later add was held
