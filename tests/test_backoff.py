"""The waits between tries while Redis is unreachable, and what they log."""

import logging
import threading
import time

import redis

from django_convoy.connection import NO_RETRIES
from django_convoy.exceptions import RedisUnavailable
from django_convoy.testing.servers import free_port
from django_convoy.worker import backoff as backoff_module
from django_convoy.worker import wake
from django_convoy.worker.backoff import Backoff
from tests.helpers import ThreadedWorker

AWAY = RedisUnavailable("Redis at 127.0.0.1:1 is unreachable (ConnectionError: refused).")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logged(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_waits_double_from_the_first_to_the_cap_jittered_below_each_step():
    backoff = Backoff("claiming", first=0.1, cap=2.0)
    for step in [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]:
        assert step / 2 <= backoff.next(AWAY) <= step


def test_reconnect_waits_spread_so_workers_do_not_try_in_step():
    waits = set()
    for _ in range(20):
        backoff = Backoff("claiming")
        for _ in range(10):
            wait = backoff.next(AWAY)
        waits.add(round(wait, 3))
    assert len(waits) > 10


def test_a_success_starts_the_next_outage_from_the_first_wait():
    backoff = Backoff("claiming", first=0.1, cap=2.0)
    for _ in range(6):
        backoff.next(AWAY)
    backoff.reset()
    assert backoff.next(AWAY) <= 0.1


def test_an_outage_is_logged_when_it_begins_and_when_it_ends_not_on_every_try(caplog, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(backoff_module.time, "monotonic", clock)
    backoff = Backoff("claiming")
    with caplog.at_level(logging.DEBUG, logger="django_convoy.worker"):
        for _ in range(30):
            backoff.next(AWAY)
            clock.now += 1.5  # 45 s in all: under a minute, no reminder
        backoff.reset()
        backoff.reset()  # no outage: nothing to say
    lines = logged(caplog)
    assert [level for level, _ in lines] == ["ERROR", "WARNING"], lines
    assert lines[0][1].startswith("claiming failed: Redis at 127.0.0.1:1 is unreachable")
    assert lines[0][1].endswith("then at most every 2 s")
    assert "refused); retrying in" in lines[0][1]  # the reason's full stop does not end it
    assert lines[1][1] == "claiming works again, after 45.0 s and 30 failed tries"


def test_a_reason_that_ends_a_quoted_sentence_loses_both_full_stops(caplog):
    """redis-py's own message ends with a full stop inside convoy's parenthesis."""
    error = RedisUnavailable("Redis at 127.0.0.1:1 is unreachable (Error 111. Refused.).")
    with caplog.at_level(logging.ERROR, logger="django_convoy.worker"):
        Backoff("the jam guard").next(error)
    (line,) = [message for _, message in logged(caplog)]
    assert "Error 111. Refused); retrying in" in line


def test_a_long_outage_is_reminded_of_once_a_minute(caplog, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(backoff_module.time, "monotonic", clock)
    backoff = Backoff("renewing leases and the heartbeat")
    with caplog.at_level(logging.ERROR, logger="django_convoy.worker"):
        for _ in range(200):  # 200 tries, 2 s apart: 400 s
            backoff.next(AWAY)
            clock.now += 2.0
    reminders = [text for _, text in logged(caplog) if "still failing" in text]
    assert len(reminders) == 6, reminders  # at 60, 120, ... 360 s
    assert reminders[0].startswith("renewing leases and the heartbeat still failing after 60 s")


def test_blocking_reads_that_fail_while_claims_work_are_logged_once(settings, caplog):
    """Claims and waits back off apart: a failing BLPOP between working claims must not log a
    failure and a recovery on every turn. A socket timeout shorter than the worker's block
    (1 s) fails every BLPOP while every claim goes through."""
    settings.CONVOY = {**settings.CONVOY, "REDIS_OPTIONS": {"socket_timeout": 0.3}}
    with caplog.at_level(logging.WARNING, logger="django_convoy.worker"):
        with ThreadedWorker("default"):
            time.sleep(2.5)  # at least three failed BLPOPs, with claims between
    lines = [text for _, text in logged(caplog)]
    assert sum(text.startswith("waiting for jobs failed") for text in lines) == 1, lines
    assert not [text for text in lines if "works again" in text or "claiming" in text], lines


def test_a_queue_whose_node_is_away_is_tried_again_within_the_cap():
    """In a cluster, one queue's node away: it is skipped, then tried again within 2 s."""
    outages = backoff_module.Outages()
    for _ in range(10):
        outages.failed("q", AWAY, "claiming")
    assert outages.skipping("q")
    assert outages._retry_at["q"] - time.monotonic() <= backoff_module.BACKOFF_CAP


def test_a_wake_up_waiter_outlives_its_node_being_away_and_says_so_once(caplog):
    """In a cluster each queue has a waiter thread: it backs off like the rest of the worker,
    and neither dies nor logs a line per try while its node does not answer."""
    nobody = redis.Redis(port=free_port(), retry=NO_RETRIES, socket_connect_timeout=1)
    waiters = wake.WakeWaiters(nobody, {"q": "convoytest:{q}:wake"}, block_seconds=1)
    try:
        with caplog.at_level(logging.WARNING, logger="django_convoy.worker"):
            waiters.wait(1.5, ["q"])  # 0.05-0.1 s, then doubling: several tries
        assert all(thread.is_alive() for thread in waiters._threads)
    finally:
        waiters.stop()
        nobody.close()
    lines = [text for _, text in logged(caplog)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("q: waiting for wake-ups failed: Error 111 connecting to")


def test_waiting_is_not_a_busy_loop_for_the_claim_loop():
    """Backoff.wait sleeps on the event, and returns at once when the event is set."""
    stop = threading.Event()
    backoff = Backoff("claiming", first=0.2, cap=0.2)
    began = time.monotonic()
    backoff.wait(stop, AWAY)
    assert time.monotonic() - began >= 0.09
    stop.set()
    began = time.monotonic()
    backoff.wait(stop, AWAY)
    assert time.monotonic() - began < 0.09
