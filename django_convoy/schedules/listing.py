"""What ``convoy_scheduler --list`` and the admin's Schedules page show of each schedule: its
timing, its next and last tick, what the last tick did, and its last run's job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..queue import get_queue
from ..store import Job, from_ms
from ..store.records import ScheduleState
from ..store.schedules import ScheduleStore
from .config import Schedule, get_schedules


@dataclass(frozen=True)
class ScheduleView:
    """One schedule as Redis knows it now."""

    schedule: Schedule
    state: ScheduleState
    next_tick: datetime | None
    last_tick: datetime | None
    fired_at: datetime | None
    last_job: Job | None  # the last run's job while it is live or its result kept

    @property
    def name(self) -> str:
        return self.schedule.name

    @property
    def when(self) -> str:
        """The schedule's timing in words."""
        return self.schedule.timing.describe()

    @property
    def status(self) -> str:
        """ "disabled" (in the settings), "paused" (in Redis, for every scheduler) or "active"."""
        if not self.schedule.enabled:
            return "disabled"
        return "paused" if self.state.paused else "active"

    @property
    def last_run(self) -> str:
        """The state of the last run's job: queued, processing, failed, done... or "over"."""
        if not self.state.job_id:
            return ""
        return self.last_job.state if self.last_job else "over"


def describe(schedules: Sequence[Schedule] | None = None) -> list[ScheduleView]:
    """Every schedule (default: all configured) with its state, one round trip per queue and
    one per last run."""
    chosen = list(get_schedules() if schedules is None else schedules)
    by_queue: dict[str, list[Schedule]] = {}
    for schedule in chosen:
        by_queue.setdefault(schedule.queue, []).append(schedule)
    states: dict[str, ScheduleState] = {}
    now_ms = None
    for queue, members in by_queue.items():
        store = ScheduleStore(get_queue(queue).store)
        states.update(store.states([schedule.name for schedule in members]))
        now_ms = now_ms or store.redis_now_ms()
    views = []
    for schedule in chosen:
        state = states[schedule.name]
        job = get_queue(schedule.queue).get_job(state.job_id) if state.job_id else None
        upcoming = schedule.timing.after(now_ms) if schedule.enabled and now_ms else None
        views.append(
            ScheduleView(
                schedule,
                state,
                from_ms(upcoming),
                from_ms(state.last_tick_ms),
                from_ms(state.fired_ms),
                job,
            )
        )
    return views


def find(name: str) -> Schedule | None:
    """The configured schedule called ``name``, or None."""
    return next((s for s in get_schedules() if s.name == name), None)
