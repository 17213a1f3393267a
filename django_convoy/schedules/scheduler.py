"""The scheduler: fires every schedule's ticks as they fall due, on Redis's clock.

Any number of schedulers may run (a thread in every ``convoy_worker``, ``convoy_scheduler``
processes): each one calls the tick script for each due tick, and the script fires a tick once
(the first call adds its job; the others learn that it was done). A scheduler keeps Redis's
clock as an offset from its own monotonic clock, taken from every reply, and sleeps until the
next tick; it never reads its host's wall clock, so a host whose clock is wrong fires nothing
early or twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from ..decorators import registered_tasks
from ..exceptions import RedisUnavailable
from ..queue import get_queue
from ..store import encode_body
from ..store.records import Tick
from ..store.schedules import ScheduleStore
from ..validation import encode_payload
from ..worker.backoff import Backoff
from .config import Schedule, get_schedules

logger = logging.getLogger(__name__)

RESYNC_SECONDS = 60.0  # an idle scheduler reads Redis's clock at least this often
EARLY_RETRY_SECONDS = 0.005  # a tick Redis says is not due yet is tried again this soon
MAX_CALLS_PER_ROUND = 1000  # tick calls for one schedule in one round (a bound, never reached)
FIRED = ("added", "skipped", "exists", "missed", "paused")


def tick_job_id(name: str, tick_ms: int) -> str:
    """The id of the job of one tick: the schedule's name and the tick's UTC time."""
    moment = datetime.fromtimestamp(tick_ms / 1000, UTC)
    return f"{name}@{moment:%Y-%m-%dT%H:%M:%S}Z"


def run_now_job_id(name: str) -> str:
    """The id of a run asked for outside the ticks (the admin's "run now")."""
    return f"{name}@now-{os.urandom(4).hex()}"


def jitter_ms(schedule: Schedule, tick_ms: int) -> int:
    """How long after its tick a tick's job is due: the same in every scheduler."""
    if not schedule.jitter:
        return 0
    spread = zlib.crc32(f"{schedule.name}@{tick_ms}".encode()) / 2**32
    return int(spread * schedule.jitter * 1000)


@dataclass
class Entry:
    """A schedule as one scheduler tracks it: the last tick it knows of."""

    schedule: Schedule
    store: ScheduleStore
    last_ms: int | None = None
    loaded: bool = False
    jump: bool = True  # may skip straight to the latest missed tick
    failing_until: float = 0.0  # monotonic: a schedule whose tick failed waits until then
    backoff: Backoff | None = None


class Scheduler:
    """Fire the ticks of ``schedules`` (default: every enabled schedule) as they fall due."""

    def __init__(self, schedules: Iterable[Schedule] | None = None):
        chosen = get_schedules() if schedules is None else schedules
        self.entries = []
        for schedule in chosen:
            if schedule.enabled:
                store = ScheduleStore(get_queue(schedule.queue).store)
                self.entries.append(Entry(schedule, store))
        self._offset_ms: float | None = None  # Redis's clock minus time.monotonic(), in ms
        self._synced_at = 0.0
        self.calls = 0  # tick script calls made (for tests and benchmarks)
        self.fired: list[tuple[str, Tick]] = []  # (schedule, tick) this scheduler added

    # -- Redis's clock --------------------------------------------------------------------------

    def _sync(self, now_ms: int) -> None:
        self._offset_ms = now_ms - time.monotonic() * 1000
        self._synced_at = time.monotonic()

    def now_ms(self) -> int:
        """Redis's clock, as last read, carried on by this process's monotonic clock."""
        if self._offset_ms is None or time.monotonic() - self._synced_at > RESYNC_SECONDS:
            self._sync(self.entries[0].store.redis_now_ms())
        return int(time.monotonic() * 1000 + self._offset_ms)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Fire ticks until ``stop`` is set; wait out Redis being away with a backoff."""
        if not self.entries:
            return
        backoff = Backoff("firing schedules")
        while not stop.is_set():
            try:
                wait = self.run_once()
                backoff.reset()
            except RedisUnavailable as exc:
                wait = backoff.next(exc)
            stop.wait(wait)

    def run_once(self) -> float:
        """Fire every tick due now; return how many seconds until the next one may be due."""
        if not self.entries:
            return RESYNC_SECONDS
        self._load()
        wake_at: int | None = None
        for entry in self.entries:
            if entry.failing_until > time.monotonic():
                continue
            try:
                upcoming = self._fire_due(entry)
            except redis.ResponseError as exc:  # a corrupt key: this schedule waits, not all
                entry.backoff = entry.backoff or Backoff(f"schedule {entry.schedule.name}")
                entry.failing_until = time.monotonic() + entry.backoff.next(exc)
                continue
            if entry.backoff is not None:
                entry.backoff.reset()
                entry.backoff = None
            if upcoming is not None and (wake_at is None or upcoming < wake_at):
                wake_at = upcoming
        if wake_at is None:
            return RESYNC_SECONDS
        return min(RESYNC_SECONDS, max(0.0, (wake_at - self.now_ms()) / 1000))

    def _load(self) -> None:
        """Read the last tick of every schedule not read yet (one round trip per queue)."""
        by_store: dict[str, list[Entry]] = {}
        for entry in self.entries:
            if not entry.loaded:
                by_store.setdefault(entry.schedule.queue, []).append(entry)
        for entries in by_store.values():
            states = entries[0].store.states([entry.schedule.name for entry in entries])
            for entry in entries:
                entry.last_ms, entry.loaded = states[entry.schedule.name].last_tick_ms, True

    def _fire_due(self, entry: Entry) -> int | None:
        """Fire the due ticks of one schedule, oldest first; return its next tick (Redis ms)."""
        now = self.now_ms()
        for _ in range(MAX_CALLS_PER_ROUND):
            tick, prev = self.candidate(entry, now)
            if tick is None or tick > now:
                return tick
            reply = self._tick(entry, tick, prev)
            self._sync(reply.now_ms)
            now = reply.now_ms
            if reply.outcome == "early":
                return tick + int(EARLY_RETRY_SECONDS * 1000)
            entry.jump = reply.outcome != "behind"
            if reply.last_tick_ms is not None:
                entry.last_ms = reply.last_tick_ms
            if reply.outcome in FIRED:
                _log(entry.schedule, tick, reply)
        return now

    def candidate(self, entry: Entry, now_ms: int) -> tuple[int | None, int]:
        """The next tick to try, and the tick before it (-1: not known)."""
        timing, last = entry.schedule.timing, entry.last_ms
        if last is None:  # never fired: its latest tick if still on time, else the next one
            latest = timing.at_or_before(now_ms)
            if latest is None or now_ms - latest > timing.late_ms:
                return timing.after(now_ms), -1
            return latest, -1
        tick = timing.after(last)
        if entry.jump and tick is not None and tick < now_ms - timing.late_ms:
            latest_missed = timing.at_or_before(now_ms - timing.late_ms - 1)
            if latest_missed is not None and latest_missed > tick:
                return latest_missed, timing.before(latest_missed) or -1
        return tick, last

    def _tick(self, entry: Entry, tick: int, prev: int) -> Tick:
        schedule = entry.schedule
        following = schedule.timing.after(tick)
        rules = (schedule.timing.late_ms, schedule.catch_up, schedule.overlap)
        self.calls += 1
        reply = self._call(entry, (tick, prev, -1 if following is None else following), rules)
        if reply.outcome == "added":
            self.fired.append((schedule.name, reply))
        return reply

    def _call(self, entry: Entry, ticks: tuple[int, int, int], rules: tuple) -> Tick:
        return call_tick(entry.schedule, entry.store, ticks, rules)

    def run_now(self, name: str) -> Tick:
        """Add a run of schedule ``name`` now (see ``run_now``)."""
        entry = next((e for e in self.entries if e.schedule.name == name), None)
        if entry is None:
            raise KeyError(name)
        return run_now(entry.schedule)


def call_tick(
    schedule: Schedule, store: ScheduleStore, ticks: tuple[int, int, int], rules: tuple
) -> Tick:
    """Call the tick script for ``ticks`` (tick, previous, next; tick -1: run now)."""
    tick = ticks[0]
    job_id = tick_job_id(schedule.name, tick) if tick >= 0 else run_now_job_id(schedule.name)
    body, result = tick_body(schedule)
    job = (job_id, body, schedule.priority, jitter_ms(schedule, tick) if tick >= 0 else 0)
    return store.tick(schedule.name, ticks, rules, job, result)


def run_now(schedule: Schedule) -> Tick:
    """Add a run of ``schedule`` now, outside its ticks, enabled or not (the admin's "run
    now"); unless ``overlap`` is "skip" and its last run is live: then the reply says
    "skipped" and nothing changed."""
    store = ScheduleStore(get_queue(schedule.queue).store)
    rules = (schedule.timing.late_ms, schedule.catch_up, schedule.overlap)
    return call_tick(schedule, store, (-1, -1, -1), rules)


def tick_body(schedule: Schedule) -> tuple[str, tuple[str, int] | None]:
    """The body of a tick's job, and for a Django task its result's key and how long to keep
    it (each tick of a Django task is a fresh run with a result of its own)."""
    if schedule.django_task is not None:
        from .config import _convoy_backend

        backend = _convoy_backend(schedule.django_task)
        _, body, key, keep_ms = backend.scheduled_run(
            schedule.django_task, schedule.args, schedule.kwargs
        )
        return body, (key, keep_ms)
    queue = get_queue(schedule.queue)
    payload = encode_payload(
        {"args": schedule.args, "kwargs": schedule.kwargs},
        queue.config.max_payload_bytes,
        queue.name,
        what=f"The arguments of schedule {schedule.name}",
    )
    task = registered_tasks().get(schedule.task)
    return encode_body(schedule.task, payload, task.policy_json if task else ""), None


def _log(schedule: Schedule, tick: int, reply: Tick) -> None:
    when = tick_job_id("", tick)[1:]
    if reply.outcome == "added":
        logger.info("schedule %s: tick %s added job %s", schedule.name, when, reply.job_id)
    elif reply.outcome == "skipped":
        logger.info(
            "schedule %s: tick %s skipped: its last run %s is not over (overlap skip)",
            schedule.name,
            when,
            reply.job_id,
        )
    elif reply.outcome == "missed":
        logger.warning(
            "schedule %s: tick %s missed: no scheduler fired it within %.0f s (catch_up %s)",
            schedule.name,
            when,
            schedule.timing.late_ms / 1000,
            schedule.catch_up,
        )
    elif reply.outcome == "exists":
        logger.info(
            "schedule %s: tick %s: job %s exists already", schedule.name, when, reply.job_id
        )
