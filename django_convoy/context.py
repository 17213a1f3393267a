"""What a running job can ask about itself: ``current_job()`` and ``still_owner()``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class JobContext:
    """The run a worker is executing in this thread: its id, attempt and fencing token."""

    queue: str
    id: str
    attempt: int
    token: str


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
