"""What a worker's threads hand each other: the runs it holds, how they ended, and backoff."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .job import ClaimedJob
from .pool import ChildProcess

logger = logging.getLogger("django_convoy.worker")


@dataclass(eq=False)
class Run:
    """A claimed run, as the worker tracks it until Redis has its outcome."""

    job: ClaimedJob
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic; from JOB_TIMEOUT
    executing: bool = True
    slot_held: bool = True
    # Set once its outcome must not be reported: timed out, handed back, or lease lost.
    abandoned: str = ""
    thread: threading.Thread | None = None  # the executor running it
    child: ChildProcess | None = None  # with --pool processes, the child running it


@dataclass(frozen=True)
class Outcome:
    """How a run ended on its executor thread."""

    run: Run
    error: dict[str, Any] | None
    final: bool | None  # None: let MAX_ATTEMPTS decide
    seconds: float


class Backoff:
    """Exponential waits while Redis is unreachable, so an outage never becomes a busy loop."""

    def __init__(self, first: float = 0.2, cap: float = 15.0):
        self.first, self.cap, self.current = first, cap, 0.0

    def wait(self, event: threading.Event, exc: Exception) -> None:
        event.wait(self.next(exc))

    def next(self, exc: Exception) -> float:
        """Log ``exc`` and return how long to wait before the next try."""
        self.current = min(self.cap, self.current * 2 or self.first)
        logger.error("%s; retrying in %.1f s", exc, self.current)
        return self.current

    def reset(self) -> None:
        self.current = 0.0
