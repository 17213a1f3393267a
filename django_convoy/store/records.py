"""The records the store hands out, and the one reader of what convoy stores.

Small frozen dataclasses over the scripts' replies. A job's record (``jobs`` HASH) is
``"enqueued_ms|attempts|jams|priority|" + body``, a run's (``run`` HASH) ``"token|started_ms|
attempt|worker"``, a body ``{"task": name, "payload": ...}``: they are read here and nowhere else in
Python (``lua/_prelude.lua`` reads them in Lua).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATES = ("scheduled", "queued", "processing", "jammed", "failed")
# What get_job says of an id whose job is over and whose last run's result is kept.
DONE = "done"


def from_ms(ms: str | int | float | None) -> datetime | None:
    """Convert a Redis-clock millisecond timestamp to an aware UTC datetime.

    None for a missing or hand-mangled value: reading a job must not fail on garbage that the
    scripts themselves tolerate.
    """
    try:
        return datetime.fromtimestamp(int(float(ms)) / 1000, tz=UTC) if ms else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def to_int(value: Any, default: int = 0) -> int:
    """Read an integer Redis sent, whatever its form ("12", "1.2e+15", b"3"); ``default`` for
    garbage. Lua prints large numbers in exponent notation, so ``int()`` alone is not enough."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default


@dataclass(frozen=True)
class RecordHead:
    """The counters in front of a job's body: when it was enqueued, its runs, its jams."""

    enqueued_ms: int
    attempts: int
    jams: int
    priority: int

    @classmethod
    def parse(cls, text: str) -> RecordHead:
        """Read ``"enqueued_ms|attempts|jams|priority"``; a mangled part reads as 0."""
        parts = ([*text.split("|"), "0", "0", "0", "0"])[:4]
        return cls(*(to_int(part) for part in parts))


@dataclass(frozen=True)
class RunRecord:
    """Who holds a job while it is processing: the run's fencing token, start, attempt, worker."""

    token: str
    started_ms: int | None
    attempt: int | None
    worker: str | None

    @classmethod
    def parse(cls, text: str) -> RunRecord:
        """Read ``"token|started_ms|attempt|worker"`` (or, written before attempts were kept
        there, ``"token|started_ms|worker"``); an empty one (no run) reads as all unknown."""
        parts = text.split("|", 3) if text else []
        if len(parts) == 4 and parts[2].isdigit():
            token, started, attempt, worker = parts
        else:
            token, started, worker = ([*text.split("|", 2), "", ""])[:3] if text else ("",) * 3
            attempt = ""
        return cls(
            token,
            to_int(started, None) if started else None,
            to_int(attempt, None) if attempt else None,
            worker or None,
        )


@dataclass(frozen=True)
class DataMarks:
    """What shows that Redis still holds a queue's data: a counter that only grows, and the
    time the queue was first used, which never changes."""

    sequence: int
    born: str


@dataclass(frozen=True)
class AddResult:
    """What an add did: whether this call queued the id, where the id is now ("held": refused
    by a ``hold_for``), whether it asked for a rerun of a processing id
    (``if_processing="rerun"``) that will happen, and whether it replaced the payload of the
    id's waiting job (``if_queued="replace"``)."""

    id: str
    added: bool
    state: str
    rerun: bool = False
    replaced: bool = False


@dataclass(frozen=True)
class JobResult:
    """What the last run of a job id returned, kept ``RESULT_TTL`` after it ended.

    ``kept`` False: the value could not be kept (not JSON, or over ``MAX_RESULT_BYTES``), and
    ``note`` says why; the run succeeded all the same.
    """

    value: Any
    kept: bool
    note: str
    finished_at: datetime | None
    started_at: datetime | None
    attempt: int
    worker: str | None

    @property
    def duration(self) -> float | None:
        """Seconds the run took, by Redis's clock."""
        if self.finished_at is None or self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @classmethod
    def parse(cls, text: str) -> JobResult | None:
        """Read ``"finished_ms|started_ms|attempt|kept|worker|" + text``; None for garbage."""
        parts = text.split("|", 5)
        if len(parts) != 6:
            return None
        finished, started, attempt, kept, worker, rest = parts
        value, note = None, rest
        if kept == "1":
            try:
                value, note = json.loads(rest), ""
            except ValueError:
                kept = "0"
        return cls(
            value,
            kept == "1",
            note,
            from_ms(finished),
            from_ms(started),
            to_int(attempt),
            worker or None,
        )


@dataclass(frozen=True)
class Job:
    """A snapshot of one job, as ``Queue.get_job`` reads it from Redis in one atomic step."""

    id: str
    payload: Any
    state: str
    attempts: int
    enqueued_at: datetime | None
    started_at: datetime | None
    worker: str | None
    last_error: dict[str, Any] | None
    queue: str = ""
    task: str | None = None
    priority: int = 0
    jams: int = 0
    lease_deadline: datetime | None = None  # processing: when its lease ends; jammed: ended
    due_at: datetime | None = None  # scheduled: when it becomes due
    failed_at: datetime | None = None  # failed: when it failed for the last time
    rerun_pending: bool = False
    # What the id's last run returned, while kept: state "done" when the job itself is over.
    result: JobResult | None = None
    progress: Progress | None = None  # how far the live run got, if it said


@dataclass(frozen=True)
class Progress:
    """How far a run got, as it last said (``current_job().set_progress``)."""

    done: float
    total: float | None
    message: str
    updated_at: datetime | None
    rate: float | None  # done per second since the run's first report (None: one report yet)

    @property
    def fraction(self) -> float | None:
        """done / total, from 0 to 1, when the total is known."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    @property
    def percent(self) -> int | None:
        """The fraction as a whole percentage."""
        fraction = self.fraction
        return None if fraction is None else int(fraction * 100)

    @classmethod
    def parse(cls, text: str, started_ms: int | None) -> Progress | None:
        """Read ``progress.lua``'s record, if it is the run's that started at ``started_ms``."""
        parts = text.split("|", 5)
        if len(parts) < 6 or started_ms is None:
            return None
        first_ms, first_done, updated_ms = to_int(parts[0]), _float(parts[1]), to_int(parts[2])
        done, total = _float(parts[3]), _float(parts[4])
        if first_ms < started_ms or done is None:
            return None  # an earlier run's
        seconds = (updated_ms - first_ms) / 1000
        rate = (done - (first_done or 0.0)) / seconds if seconds > 0 else None
        return cls(done, total, parts[5], from_ms(updated_ms), rate)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class RecoveredJob:
    """A jammed run the jam guard recovered, and why it was jammed."""

    id: str
    queue: str
    action: str  # "requeued" | "failed" (jammed more than MAX_JAMS times) | "rerun" | "dropped"
    worker: str
    started_at: datetime | None
    lease_expired_at: datetime | None
    attempts: int
    jams: int
    worker_gone: bool

    @property
    def reason(self) -> str:
        """Why the run was jammed, as the jam guard reports it."""
        if self.worker_gone:
            return f"worker {self.worker or '?'} gone (no heartbeat)"
        return f"lease expired (worker {self.worker or '?'} stopped renewing it)"


@dataclass(frozen=True)
class HeldRuns:
    """The runs of one queue that one worker holds now, as Redis knows them."""

    queue: str
    count: int
    oldest: list[tuple[str, float]]  # (id, seconds it has been running), longest first


@dataclass(frozen=True)
class JamGuardRound:
    """What one round of the jam guard did: the runs it recovered, or, when Redis came back
    from an outage less than a lease ago, until when it holds recoveries (live workers renew
    their leases first)."""

    recovered: list[RecoveredJob]
    redis_ms: int  # Redis's now when it ran
    held_until: datetime | None = None


@dataclass(frozen=True)
class Run:
    """One run of a job handed to a worker: what it needs to execute the job and to prove, with
    its fencing token, that it still holds it."""

    queue: str
    id: str
    body: str
    attempt: int
    token: str
    jams: int = 0  # times the job was jammed: after MAX_JAMS, its last chance, in quarantine


@dataclass(frozen=True)
class ClaimBatch:
    """What one claim returned: the runs, and when the next scheduled job is due."""

    runs: list[Run]
    now_ms: int
    next_due_ms: int | None
    paused: bool
    marks: DataMarks
    waiting: bool  # the worker's request to be handed jobs stands (claim's wait_ms)


@dataclass(frozen=True)
class GroupRow:
    """One group of a queue (flow control), as the admin's Groups list shows it."""

    group: str
    processing: int
    queued: int
    at_cap: bool  # held back by GROUP_CONCURRENCY until one of its runs ends
    waits_until: datetime | None  # held back by GROUP_RATE_LIMIT until then


@dataclass(frozen=True)
class GroupPage:
    """A page of a queue's groups, busiest first, and whether RATE_LIMIT holds it back."""

    now_ms: int
    total: int
    throttled_until: datetime | None  # None: RATE_LIMIT does not hold claims back now
    rows: list[GroupRow]


@dataclass(frozen=True)
class JobRow:
    """One job as a listing (``browse``) shows it; times are aware UTC datetimes."""

    id: str
    state: str
    task: str | None
    payload_preview: str  # the payload's JSON, or its start when payload_cut
    payload_cut: bool
    payload_bytes: int  # of the whole stored body
    priority: int
    attempts: int
    jams: int
    enqueued_at: datetime | None
    started_at: datetime | None
    worker: str | None
    lease_deadline: datetime | None  # processing and jammed
    due_at: datetime | None  # scheduled
    failed_at: datetime | None  # failed
    # Seconds from the page's "now" to the due time or lease deadline (< 0: overdue).
    seconds_until: float | None
    running_for: float | None  # seconds since the current run started, while a worker holds it
    error_type: str
    error_message: str
    rerun_pending: bool
    ran_for: float | None = None  # failed: seconds its last run took (its error's "ran_ms")

    @property
    def past_lease(self) -> float | None:
        """How long ago a jammed job's lease ended."""
        if self.state != "jammed" or self.seconds_until is None:
            return None
        return -self.seconds_until


def state_times(state: str, score: Any) -> dict[str, datetime | None]:
    """The time a state's sorted-set score means, under the name it has in that state."""
    moment = None if state == "queued" else from_ms(score)
    return {
        "lease_deadline": moment if state in ("processing", "jammed") else None,
        "due_at": moment if state == "scheduled" else None,
        "failed_at": moment if state == "failed" else None,
    }


@dataclass(frozen=True)
class Tick:
    """What the tick script did with one tick of a schedule (see ``lua/tick.lua``)."""

    outcome: str  # early, done, behind (nothing changed); added, skipped, exists, missed, paused
    now_ms: int  # Redis's clock when it ran
    last_tick_ms: int | None  # the schedule's last fired or passed-over tick, after the call
    job_id: str  # the job added, or the live one the tick skipped for ("" if neither)


@dataclass(frozen=True)
class ScheduleState:
    """A schedule's state in Redis: its last tick, when and how it went, its last run's job."""

    last_tick_ms: int | None
    fired_ms: int | None
    outcome: str
    job_id: str
    paused: bool = False

    @classmethod
    def parse(cls, text: str | None, paused: bool) -> ScheduleState:
        """Read ``"last_tick_ms|fired_ms|outcome|job id"`` (None: the schedule never ticked)."""
        last, fired, outcome, job_id = ([*(text or "").split("|", 3), "", "", "", ""])[:4]
        last_ms, fired_ms = to_int(last, -1), to_int(fired, -1)
        return cls(
            last_ms if last_ms >= 0 else None, fired_ms if fired_ms >= 0 else None,
            outcome, job_id, paused,
        )  # fmt: skip
