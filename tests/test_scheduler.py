"""The scheduler: in-process against the suite's redis-server, and as the commands run it.

Process-level scenarios (several schedulers, SIGKILLs, a skewed clock, a Redis restart) are in
``tests/faults/test_schedules.py``.
"""

from __future__ import annotations

import signal
import threading
import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from django_convoy import get_queue
from django_convoy.schedules import Scheduler, get_schedules, tick_job_id
from django_convoy.schedules.thread import start_scheduler
from django_convoy.store.keys import workers_registry_key
from django_convoy.store.schedules import ScheduleStore
from django_convoy.testing import drain
from tests.djtasks import config as djtasks
from tests.helpers import manage, test_log, wait_until

TASK = "tests.jobs.tasks.record"
SECOND = 1000


def scheduled(**entries):
    return override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": entries})


def every(seconds: int, **options):
    return {"task": TASK, "every": seconds, "args": ["s"], **options}


def queued_ids(queue: str = "default") -> list[str]:
    q = get_queue(queue)
    return sorted(q.client.zrange(q.keys.queued, 0, -1))


def test_three_schedulers_fire_every_tick_of_an_every_second_schedule_once():
    with scheduled(each=every(1, overlap="allow")):
        stop = threading.Event()
        schedulers = [Scheduler() for _ in range(3)]
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in schedulers]
        for thread in threads:
            thread.start()
        time.sleep(3.5)
        stop.set()
        for thread in threads:
            thread.join(5)
    fired = [tick.job_id for s in schedulers for _, tick in s.fired]
    assert len(fired) == len(set(fired)) >= 3  # none twice
    seconds = sorted(int(t.last_tick_ms) for s in schedulers for _, t in s.fired)
    assert all(b - a == SECOND for a, b in zip(seconds, seconds[1:], strict=False))  # none skipped
    assert queued_ids() == sorted(fired)


def test_a_scheduler_whose_idea_of_the_clock_runs_ahead_fires_nothing_early():
    with scheduled(each=every(10, overlap="allow")):
        scheduler = Scheduler()
        scheduler.run_once()  # reads the last tick and Redis's clock
        already = list(queued_ids())
        scheduler._offset_ms += 30_000  # as if Redis's clock were 30 s later than it is
        scheduler.run_once()
    store = ScheduleStore(get_queue("default").store)
    now = store.redis_now_ms()
    assert queued_ids() == already  # the ticks it thought due were refused as early
    assert all(t.last_tick_ms <= now for _, t in scheduler.fired)


@pytest.mark.parametrize(("catch_up", "expected"), [("latest", 2), ("none", 1)])
def test_after_every_scheduler_was_away_catch_up_decides_the_missed_ticks(catch_up, expected):
    store = ScheduleStore(get_queue("default").store)
    with scheduled(minutely=every(60, catch_up=catch_up, overlap="allow")):
        schedule = get_schedules()[0]
        hour_ago = schedule.timing.at_or_before(store.redis_now_ms() - 3600 * SECOND)
        rules = (schedule.timing.late_ms, catch_up, "allow")
        job = ("minutely@long-ago", '{"payload":null}', 0, 0)
        store.tick("minutely", (hour_ago, -1, hour_ago + 60 * SECOND), rules, job)
        get_queue("default").purge()
        scheduler = Scheduler()
        scheduler.run_once()
    # An hour of ticks missed: "latest" adds the latest missed one, then the one on time.
    assert len(queued_ids()) == expected
    assert scheduler.calls == 2  # one call for the whole missed hour, one for the tick on time


def test_a_paused_schedule_fires_nothing_until_resumed():
    store = ScheduleStore(get_queue("default").store)
    store.pause("each")
    with scheduled(each=every(1, overlap="allow")):
        scheduler = Scheduler()
        time.sleep(scheduler.run_once())
        scheduler.run_once()
        assert queued_ids() == []
        store.resume("each")
        time.sleep(scheduler.run_once())
        scheduler.run_once()
    assert len(queued_ids()) >= 1


def test_a_disabled_schedule_is_not_fired():
    with scheduled(off=every(1, enabled=False)):
        assert Scheduler().entries == []
        assert start_scheduler(threading.Event()) is None


def test_the_scheduler_thread_fires_beside_a_worker_until_stopped():
    with scheduled(each=every(1, overlap="allow")):
        stop = threading.Event()
        thread = start_scheduler(stop)
        wait_until(lambda: queued_ids(), timeout=5)
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_jitter_makes_a_ticks_job_due_up_to_that_long_after_its_tick():
    with scheduled(each=every(1, jitter=30, overlap="allow")):
        scheduler = Scheduler()
        scheduler.run_once()
    (_, tick), *_ = scheduler.fired
    job = get_queue("default").get_job(tick.job_id)
    assert job.state in ("scheduled", "queued")
    due = job.due_at.timestamp() * 1000 if job.due_at else tick.last_tick_ms
    assert tick.last_tick_ms <= due <= tick.last_tick_ms + 30 * SECOND


def test_run_now_adds_a_run_outside_the_ticks():
    with scheduled(nightly={"task": TASK, "cron": "0 3 * * *", "args": ["n"]}):
        reply = Scheduler().run_now("nightly")
        assert reply.outcome == "added" and reply.job_id.startswith("nightly@now-")
        again = Scheduler().run_now("nightly")
    assert again.outcome == "skipped"  # overlap "skip": the first is still queued
    assert drain("default").processed == (reply.job_id,)


@pytest.mark.skipif(not djtasks.AVAILABLE, reason="Django's Tasks framework is not installed")
def test_a_django_task_schedule_adds_a_run_with_its_result():
    from tests.djtasks.tasks import calculate_meaning_of_life

    path = calculate_meaning_of_life.module_path
    with scheduled(life={"task": path, "every": 1, "overlap": "allow"}):
        (schedule,) = get_schedules()
        scheduler = Scheduler()
        scheduler.run_once()
    (_, tick), *_ = scheduler.fired
    assert schedule.django_task is not None
    queue = get_queue(schedule.queue)
    assert queue.get_job(tick.job_id).task == path
    assert drain(schedule.queue).processed == (tick.job_id,)


def test_convoy_scheduler_once_fires_what_is_due_and_list_shows_next_and_last_ticks():
    with scheduled(each=every(1, overlap="allow"), nightly={"task": TASK, "cron": "0 3 * * *"}):
        out = StringIO()
        call_command("convoy_scheduler", "--once", stdout=out)
        assert "Fired 1 tick(s)." in out.getvalue()
        listing = StringIO()
        call_command("convoy_scheduler", "--list", stdout=listing)
    text = listing.getvalue()
    assert f"each: {TASK} on queue default, every 1 s, active" in text
    assert "nightly: " in text and "cron 0 3 * * * (" in text
    assert "(added)" in text and "last run:  each@" in text


def test_convoy_worker_fires_the_schedules_unless_given_no_scheduler():
    env = {"DJANGO_SETTINGS_MODULE": "tests.schedule_settings"}
    registry = workers_registry_key(settings.CONVOY["KEY_PREFIX"])
    client = get_queue("default").client
    quiet = manage("convoy_worker", "default", "--no-scheduler", env=env)
    wait_until(lambda: client.zcard(registry) == 1, 30)
    time.sleep(2.5)  # ticks a scheduler would have fired
    quiet.send_signal(signal.SIGTERM)
    assert quiet.wait(30) == 0, quiet.stdout.read()
    assert not [e for e in test_log() if "every-second@" in e]
    worker = manage("convoy_worker", "default", env=env)
    try:
        wait_until(lambda: [e for e in test_log() if e.startswith("end every-second@")], 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
    assert "tick" in output and "added job every-second@" in output
    ran = {e.split()[1] for e in test_log() if e.startswith("start every-second@")}
    assert ran and all(job_id.endswith("Z") for job_id in ran)
    assert tick_job_id("every-second", 0) == "every-second@1970-01-01T00:00:00Z"
