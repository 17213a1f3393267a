"""When schedules tick: ``every`` aligned to the epoch, cron in a time zone through DST changes.

Unit level, with the cron library (cronsim): no Redis. A tick is an instant (ms since the
epoch); the tests read them back as local wall-clock times of the schedule's zone.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from django_convoy.schedules.ticks import LATE_MS, Cron, Every, cron_error


def ms(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def local(tick: int, zone: str) -> str:
    return datetime.fromtimestamp(tick / 1000, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def ticks(timing, start: int, count: int) -> list[int]:
    found, tick = [], start
    for _ in range(count):
        tick = timing.after(tick)
        found.append(tick)
    return found


def test_every_is_aligned_to_the_epoch_so_every_scheduler_agrees():
    every = Every(300)
    assert every.after(1_000) == 300_000
    assert every.after(300_000) == 600_000  # strictly after
    assert every.at_or_before(599_999) == 300_000
    assert every.before(300_000) == 0


def test_every_may_be_shorter_than_a_minute():
    assert ticks(Every(1), 1_500, 3) == [2_000, 3_000, 4_000]


def test_a_tick_may_be_five_periods_or_a_minute_late_before_it_is_missed():
    assert Every(1).late_ms == 5_000
    assert Every(300).late_ms == LATE_MS == 60_000
    assert Cron("* * * * *", "UTC").late_ms == 60_000


def test_cron_ticks_in_the_schedules_time_zone():
    cron = Cron("0 3 * * *", "Europe/Paris")
    first = cron.after(ms("2026-01-10 12:00", "Europe/Paris"))
    assert local(first, "Europe/Paris") == "2026-01-11 03:00 CET"
    assert first == ms("2026-01-11 02:00", "UTC")


@pytest.mark.parametrize(
    ("zone", "day_before", "expected"),
    [
        # Europe/Paris springs forward on 2026-03-29 at 02:00 -> 03:00: 02:30 does not exist.
        ("Europe/Paris", "2026-03-28 12:00", ["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]),
        # America/New_York springs forward on 2026-03-08 at 02:00 -> 03:00.
        ("America/New_York", "2026-03-07 12:00", ["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT"]),
    ],
)
def test_spring_forward_fires_a_skipped_fixed_time_once_when_the_clocks_jump(
    zone, day_before, expected
):
    cron = Cron("30 2 * * *", zone)
    fired = ticks(cron, ms(day_before, zone), 2)
    assert [local(t, zone) for t in fired] == expected


@pytest.mark.parametrize(
    ("zone", "expression", "day_before", "expected"),
    [
        # Europe/Paris falls back on 2026-10-25 at 03:00 -> 02:00: 02:30 happens twice.
        (
            "Europe/Paris",
            "30 2 * * *",
            "2026-10-24 12:00",
            ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"],
        ),
        # America/New_York falls back on 2026-11-01 at 02:00 -> 01:00: 01:30 happens twice.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31 12:00",
            ["2026-11-01 01:30 EDT", "2026-11-02 01:30 EST"],
        ),
    ],
)
def test_fall_back_fires_a_repeated_fixed_time_once(zone, expression, day_before, expected):
    fired = ticks(Cron(expression, zone), ms(day_before, zone), 2)
    assert [local(t, zone) for t in fired] == expected


def test_fall_back_an_hourly_expression_follows_the_wall_clock_through_the_repeated_hour():
    zone = "Europe/Paris"
    fired = ticks(Cron("30 * * * *", zone), ms("2026-10-25 00:45", zone), 4)
    assert [local(t, zone) for t in fired] == [
        "2026-10-25 01:30 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-25 02:30 CET",
        "2026-10-25 03:30 CET",
    ]
    assert len(set(fired)) == 4  # distinct instants, so distinct tick ids


def test_spring_forward_an_hourly_expression_has_no_tick_in_the_skipped_hour():
    zone = "America/New_York"
    fired = ticks(Cron("30 * * * *", zone), ms("2026-03-08 00:45", zone), 3)
    assert [local(t, zone) for t in fired] == [
        "2026-03-08 01:30 EST",
        "2026-03-08 03:30 EDT",
        "2026-03-08 04:30 EDT",
    ]


@pytest.mark.parametrize(
    ("zone", "expression", "start"),
    [
        ("Europe/Paris", "30 2 * * *", "2026-10-20 00:00"),
        ("Europe/Paris", "30 2 * * *", "2026-03-25 00:00"),
        ("America/New_York", "30 1 * * *", "2026-10-28 00:00"),
        ("America/New_York", "*/20 1 * * *", "2026-10-31 23:00"),
    ],
)
def test_the_last_tick_at_or_before_a_moment_is_one_the_forward_ticks_reach(
    zone, expression, start
):
    cron = Cron(expression, zone)
    forward = ticks(cron, ms(start, zone), 12)
    for i, tick in enumerate(forward[1:], 1):
        assert cron.at_or_before(tick) == tick
        assert cron.at_or_before(tick - 1) == forward[i - 1]


@pytest.mark.parametrize(
    ("expression", "why"),
    [("61 * * * *", "Bad minute"), ("* * * *", "Wrong number of fields")],
)
def test_a_bad_cron_expression_says_why(expression, why):
    assert cron_error(expression) == why
    assert cron_error("*/5 * * * *") == ""
