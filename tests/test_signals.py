"""Signals sent as jobs go through convoy, and the extra fields of the worker's job log lines."""

import logging
import time

import pytest

from django_convoy import get_queue, signals
from django_convoy.queue import ConvoyQueue
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, wait_until
from tests.jobs import tasks


@pytest.fixture
def received():
    """Every signal sent during the test, as (signal name, its keyword arguments)."""
    found: list[tuple[str, dict]] = []
    connected = []
    for name in ("job_added", "job_started", "job_finished", "job_recovered"):

        def receiver(sender, signal, name=name, **kwargs):
            assert sender is ConvoyQueue
            found.append((name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        connected.append((getattr(signals, name), receiver))
    yield found
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_job_added_says_whether_this_call_added_the_id(received):
    tasks.record.enqueue("a")
    tasks.record.enqueue("a")
    assert received == [
        ("job_added", {"queue": "default", "job_id": "rec-a", "added": True, "state": "queued",
                       "rerun": False}),
        ("job_added", {"queue": "default", "job_id": "rec-a", "added": False, "state": "queued",
                       "rerun": False}),
    ]  # fmt: skip


def test_a_worker_sends_job_started_and_job_finished_with_the_outcome(received):
    tasks.record.enqueue("ok")
    tasks.boom.enqueue("bad")
    with ThreadedWorker("default") as worker:
        wait_until(lambda: sum(name == "job_finished" for name, _ in received) == 2)
    started = [kwargs for name, kwargs in received if name == "job_started"]
    assert [(s["job_id"], s["attempt"], s["worker"]) for s in started] == [
        ("rec-ok", 1, worker.id),
        (started[1]["job_id"], 1, worker.id),
    ]
    ended = {kwargs["job_id"]: kwargs for name, kwargs in received if name == "job_finished"}
    ok, bad = ended["rec-ok"], ended[started[1]["job_id"]]
    assert (ok["outcome"], ok["error"], ok["attempt"], ok["queue"]) == ("done", None, 1, "default")
    assert ok["duration"] >= 0
    assert bad["outcome"] == "failed"
    assert bad["error"]["type"] == "builtins.ValueError" and bad["error"]["message"] == "bad"


def test_a_retried_run_finishes_with_outcome_retry(received):
    tasks.flaky.enqueue("r", 1)
    drain("retrying")
    time.sleep(0.2)
    drain("retrying")
    outcomes = [kwargs["outcome"] for name, kwargs in received if name == "job_finished"]
    assert outcomes == ["retry", "done"]


def test_job_recovered_is_sent_for_each_run_the_jam_guard_recovers(received, redis_client):
    queue = get_queue("fast")
    queue.add_job("stuck")
    queue.claim(1, "dead-worker")
    redis_client.zadd(queue.keys.processing, {"stuck": 1})  # its lease long gone
    queue.jam_guard()
    assert received[-1] == (
        "job_recovered",
        {"queue": "fast", "job_id": "stuck", "action": "requeued", "worker": "dead-worker",
         "attempts": 1, "jams": 1},
    )  # fmt: skip


def test_a_receiver_that_raises_is_logged_and_changes_nothing(caplog):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.job_added.connect(broken)
    signals.job_finished.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            assert tasks.record.enqueue("safe").added
            assert drain("default").processed == ("rec-safe",)
    finally:
        signals.job_added.disconnect(broken)
        signals.job_finished.disconnect(broken)
    errors = [r for r in caplog.records if r.name == "django.dispatch"]
    assert len(errors) == 2
    assert all("receiver bug" in r.getMessage() and r.exc_info for r in errors)
    assert get_queue("default").get_job("rec-safe").state == "done"  # ran all the same


def test_the_worker_s_job_lines_carry_extra_fields(caplog):
    tasks.record.enqueue("logged")
    tasks.boom.enqueue("logged too")
    with caplog.at_level(logging.INFO, logger="django_convoy.worker"):
        with ThreadedWorker("default"):
            wait_until(lambda: get_queue("default").stats()["failed"] == 1)
            wait_until(lambda: get_queue("default").stats()["processed_total"] == 1)
    lines = {r.outcome: r for r in caplog.records if hasattr(r, "outcome")}
    done, failed = lines["done"], lines["failed"]
    assert (done.queue, done.job_id, done.attempt) == ("default", "rec-logged", 1)
    assert done.duration_ms >= 0 and done.levelno == logging.INFO
    assert failed.levelno == logging.WARNING and failed.attempt == 1
