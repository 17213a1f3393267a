"""The tick script (``store/lua/tick.lua``): one tick fires once, on Redis's clock.

Against the suite's redis-server. Ticks are placed relative to Redis's own clock, read first.
"""

from __future__ import annotations

import threading

import pytest

from django_convoy import get_queue
from django_convoy.schedules.scheduler import tick_job_id
from django_convoy.store import encode_body
from django_convoy.store.schedules import ScheduleStore

NAME = "report"
SECOND = 1000
LATE = 5 * SECOND


@pytest.fixture
def store() -> ScheduleStore:
    return ScheduleStore(get_queue("default").store)


def fire(store, tick, *, prev=-1, next_tick=None, catch_up="latest", overlap="skip", late=LATE):
    following = tick + SECOND if next_tick is None else next_tick
    job_id = tick_job_id(NAME, tick) if tick >= 0 else f"{NAME}@now"
    body = encode_body("tests.jobs.tasks.record", '{"args":["x"],"kwargs":{}}')
    return store.tick(
        NAME, (tick, prev, following), (late, catch_up, overlap), (job_id, body, 0, 0)
    )


def second(now_ms: int) -> int:
    return now_ms - now_ms % SECOND


def test_a_due_tick_adds_its_job_once(store):
    tick = second(store.redis_now_ms())
    first, again = fire(store, tick), fire(store, tick)
    assert (first.outcome, first.job_id, first.last_tick_ms) == (
        "added",
        tick_job_id(NAME, tick),
        tick,
    )
    assert again.outcome == "done" and again.last_tick_ms == tick
    assert get_queue("default").stats()["queued"] == 1


def test_a_tick_ahead_of_redis_clock_changes_nothing(store):
    tick = second(store.redis_now_ms()) + 10 * SECOND
    reply = fire(store, tick)
    assert reply.outcome == "early" and reply.last_tick_ms is None
    assert reply.now_ms < tick
    assert get_queue("default").stats()["queued"] == 0


def test_twenty_schedulers_firing_the_same_tick_add_one_job(store):
    tick = second(store.redis_now_ms())
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def scheduler() -> None:
        barrier.wait()
        outcomes.append(fire(store, tick, overlap="allow").outcome)

    threads = [threading.Thread(target=scheduler) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added"] + ["done"] * 19


def test_an_older_tick_still_on_time_fires_before_a_later_one(store):
    now = second(store.redis_now_ms())
    fire(store, now - 3 * SECOND, overlap="allow")
    reply = fire(store, now, prev=now - SECOND, overlap="allow")
    assert reply.outcome == "behind" and reply.last_tick_ms == now - 3 * SECOND
    assert fire(store, now - 2 * SECOND, prev=now - 3 * SECOND, overlap="allow").outcome == "added"


def test_catch_up_latest_fires_the_latest_missed_tick_once(store):
    now = second(store.redis_now_ms())
    fire(store, now - 3600 * SECOND, overlap="allow")
    # Every scheduler was away for an hour: the tick 30 s ago is missed, and so is the next one.
    older = fire(store, now - 30 * SECOND, prev=now - 31 * SECOND, overlap="allow")
    latest = fire(
        store, now - 10 * SECOND, prev=now - 11 * SECOND, next_tick=now - 2 * SECOND,
        overlap="allow",
    )  # fmt: skip
    assert older.outcome == "missed"
    assert latest.outcome == "added" and latest.job_id == tick_job_id(NAME, now - 10 * SECOND)


def test_catch_up_none_adds_no_missed_tick(store):
    now = second(store.redis_now_ms())
    fire(store, now - 3600 * SECOND, overlap="allow", catch_up="none")
    reply = fire(
        store, now - 10 * SECOND, prev=now - 11 * SECOND, next_tick=now - 2 * SECOND,
        catch_up="none", overlap="allow",
    )  # fmt: skip
    assert reply.outcome == "missed" and reply.last_tick_ms == now - 10 * SECOND
    assert get_queue("default").stats()["queued"] == 0


def test_a_schedule_that_never_fired_has_no_missed_tick_to_catch_up(store):
    now = second(store.redis_now_ms())
    reply = fire(store, now - 60 * SECOND, next_tick=now + SECOND)
    assert reply.outcome == "missed"


def test_overlap_skip_passes_a_tick_while_the_last_run_is_queued(store):
    now = second(store.redis_now_ms())
    first = fire(store, now - 2 * SECOND)
    skipped = fire(store, now - SECOND, prev=now - 2 * SECOND)
    assert skipped.outcome == "skipped" and skipped.job_id == first.job_id
    assert skipped.last_tick_ms == now - SECOND
    get_queue("default").delete_job(first.job_id)  # the last run is over
    assert fire(store, now, prev=now - SECOND).outcome == "added"


def test_overlap_allow_adds_every_tick(store):
    now = second(store.redis_now_ms())
    replies = [fire(store, now - i * SECOND, overlap="allow") for i in (2, 1, 0)]
    assert [r.outcome for r in replies] == ["added"] * 3
    assert get_queue("default").stats()["queued"] == 3


def test_a_paused_schedule_passes_its_ticks_for_every_scheduler(store):
    now = second(store.redis_now_ms())
    assert store.pause(NAME) and not store.pause(NAME)
    assert fire(store, now - SECOND).outcome == "paused"
    assert store.resume(NAME)
    assert fire(store, now, prev=now - SECOND).outcome == "added"
    assert store.states([NAME])[NAME].paused is False


def test_a_tick_whose_id_a_live_job_holds_is_not_added_again(store):
    now = second(store.redis_now_ms())
    get_queue("default").add_job(tick_job_id(NAME, now))
    reply = fire(store, now)
    assert reply.outcome == "exists" and reply.last_tick_ms == now


def test_run_now_adds_a_run_outside_the_ticks_and_keeps_the_last_tick(store):
    now = second(store.redis_now_ms())
    fire(store, now, overlap="allow")
    get_queue("default").delete_job(tick_job_id(NAME, now))
    reply = fire(store, -1)
    assert reply.outcome == "added" and reply.job_id == f"{NAME}@now"
    assert reply.last_tick_ms == now
    state = store.states([NAME])[NAME]
    assert (state.job_id, state.outcome, state.last_tick_ms) == (f"{NAME}@now", "added", now)


def test_run_now_with_overlap_skip_changes_nothing_while_the_last_run_is_live(store):
    now = second(store.redis_now_ms())
    fire(store, now)
    reply = fire(store, -1)
    assert reply.outcome == "skipped" and reply.job_id == tick_job_id(NAME, now)
    assert get_queue("default").stats()["queued"] == 1


def test_a_tick_hands_its_job_to_a_waiting_worker_as_any_add(store):
    queue = get_queue("default")
    queue.claim(1, "w1", wait_ms=2000)  # nothing queued: w1 asks to be handed the next job
    now = second(store.redis_now_ms())
    assert fire(store, now).outcome == "added"
    assert queue.get_job(tick_job_id(NAME, now)).state == "processing"
    assert queue.client.llen(queue.store.inbox("w1")) == 1
