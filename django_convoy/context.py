"""What a running job can ask about itself: ``current_job()`` and ``still_owner()``."""

from __future__ import annotations

import logging
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from .exceptions import JobCancelled

logger = logging.getLogger(__name__)

# A run asks Redis whether it was cancelled at most this often: a task may check in a tight
# loop, and one round trip per check would cost it (and Redis) more than its work.
CANCEL_CHECK_SECONDS = 0.5
# Progress reports are coalesced: at most one write per run this often; the latest report of
# a burst is written when the interval ends.
PROGRESS_INTERVAL_SECONDS = 0.25


@dataclass(eq=False)
class _Lost:
    """Whether a run's work still counts, as its worker or a recent read of Redis knows it;
    and its progress reports, coalesced (``set_progress``)."""

    event: threading.Event = field(default_factory=threading.Event)  # the worker sets it
    checked: float = float("-inf")  # monotonic: when Redis was last asked
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: float = float("-inf")  # lock; monotonic: when progress was last written
    pending: tuple[float, float | None, str] | None = None  # lock; the report not written yet
    timer: threading.Timer | None = None  # lock; writes the pending report when due


@dataclass(frozen=True)
class JobContext:
    """The run a worker is executing in this thread: its id, attempt and fencing token."""

    queue: str
    id: str
    attempt: int
    token: str
    # Set by the worker once the run's outcome no longer counts (its renewal was refused:
    # cancelled, or taken over; or it timed out); absent in a child process.
    lost: threading.Event | None = field(default=None, compare=False, repr=False)
    _lost: _Lost = field(default_factory=_Lost, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """Whether this run should stop: it was cancelled (``Queue.cancel``), or otherwise no
        longer holds its job (it timed out, or was taken over after its lease lapsed). Either
        way nothing it writes counts. Asks Redis at most every ``CANCEL_CHECK_SECONDS``; the
        worker tells it sooner when a renewal of the run's lease is refused."""
        if (self.lost is not None and self.lost.is_set()) or self._lost.event.is_set():
            return True
        now = time.monotonic()
        if now - self._lost.checked < CANCEL_CHECK_SECONDS:
            return False
        self._lost.checked = now
        from .queue import get_queue

        if not get_queue(self.queue).still_owns(self.id, self.token):
            self._lost.event.set()
            return True
        return False

    def set_progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Say how far the run got (``done`` of ``total``, and what it is doing), for
        ``get_job()`` and the admin. Cheap to call often: at most one write per
        ``PROGRESS_INTERVAL_SECONDS``, the latest report winning; a write refused because the
        run lost its job makes ``cancelled`` True."""
        for value, name in ((done, "done"), (total, "total")):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise TypeError(f"set_progress: {name} must be a number, not {value!r}.")
        state = self._lost
        with state.lock:
            state.pending = (done, total, str(message)[:1000])
            wait = state.written + PROGRESS_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                if state.timer is None:
                    state.timer = threading.Timer(wait, self._write_progress)
                    state.timer.daemon = True
                    state.timer.start()
                return
        self._write_progress()

    def _write_progress(self) -> None:
        state = self._lost
        with state.lock:
            report, state.pending, state.timer = state.pending, None, None
            if report is None:
                return
            state.written = time.monotonic()
        from .queue import get_queue
        from .store import Run

        run = Run(self.queue, self.id, "", self.attempt, self.token)
        try:
            if not get_queue(self.queue).set_progress(run, *report):
                state.event.set()
        except Exception:  # progress is advice: it must never fail the job
            logger.warning("%s %s: progress not recorded", self.queue, self.id, exc_info=True)

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the run should stop (see ``cancelled``)."""
        if self.cancelled:
            raise JobCancelled(f"Job {self.id!r} of queue {self.queue!r} was cancelled.")


_current: ContextVar[JobContext | None] = ContextVar("convoy_current_job", default=None)


def current_job() -> JobContext | None:
    """Return the run being executed here, or None outside a convoy worker."""
    return _current.get()


def still_owner() -> bool:
    """Ask Redis whether this run still holds its job (guard writes that must not be stale):
    False once another run took the job, and once this run's lease has passed by Redis's clock
    (the job is jammed then, and a jam guard may give it to another worker at any moment).

    True outside a job (a plain call from a shell or a test): nothing else can hold a job that
    no worker runs, so a task that guards its writes stays callable as a function."""
    job = _current.get()
    if job is None:
        return True
    from .queue import get_queue

    return get_queue(job.queue).still_owns(job.id, job.token)
