"""The waits between tries while Redis is unreachable, and what they log."""

import logging
import threading
import time

from django_convoy import runs, wake
from django_convoy.exceptions import RedisUnavailable
from django_convoy.runs import Backoff

AWAY = RedisUnavailable("Redis at 127.0.0.1:1 is unreachable (ConnectionError: refused).")


def test_waits_double_from_the_first_to_the_cap_jittered_below_each_step():
    backoff = Backoff(first=0.1, cap=2.0)
    steps = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for step in steps:
        wait = backoff.next(AWAY)
        assert step / 2 <= wait <= step


def test_reconnect_waits_spread_so_workers_do_not_try_in_step():
    waits = set()
    for _ in range(20):
        backoff = Backoff()
        for _ in range(10):
            wait = backoff.next(AWAY)
        waits.add(round(wait, 3))
    assert len(waits) > 10


def test_a_success_starts_the_next_outage_from_the_first_wait():
    backoff = Backoff(first=0.1, cap=2.0)
    for _ in range(6):
        backoff.next(AWAY)
    backoff.reset()
    assert backoff.next(AWAY) <= 0.1


def test_an_outage_is_logged_when_it_begins_and_when_it_ends_not_on_every_try(caplog):
    backoff = Backoff()
    with caplog.at_level(logging.DEBUG, logger="django_convoy.worker"):
        for _ in range(30):
            backoff.next(AWAY)
        backoff.reset()
        backoff.reset()  # no outage: nothing to say
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "ERROR"
    assert "127.0.0.1:1 is unreachable" in lines[0][1]
    assert "then at most every 2 s until it answers" in lines[0][1]
    assert lines[1][0] == "WARNING"
    assert "Redis answers again" in lines[1][1] and "30 failed tries" in lines[1][1]


def test_a_long_outage_is_reminded_of_now_and_then(caplog, monkeypatch):
    monkeypatch.setattr(runs, "OUTAGE_REMINDER", 0.05)
    backoff = Backoff(first=0.01, cap=0.02)
    with caplog.at_level(logging.ERROR, logger="django_convoy.worker"):
        for _ in range(12):
            backoff.wait(threading.Event(), AWAY)
    reminders = [r.getMessage() for r in caplog.records if "still failing" in r.getMessage()]
    assert 1 <= len(reminders) <= 5, reminders
    assert "tries, retrying" in reminders[0]


def test_a_queue_whose_node_is_away_is_tried_again_within_the_cap():
    """In a cluster, one queue's node away: it is skipped, then tried again within 2 s."""
    outages = wake.Outages()
    for _ in range(10):
        outages.failed("q", AWAY, "claiming")
    assert outages.skipping("q")
    assert outages._retry_at["q"] - time.monotonic() <= runs.BACKOFF_CAP
