"""The one backoff policy: how a worker waits while a step keeps failing, and what it logs.

``Backoff`` times the retries of one step (claiming, renewing, reporting...); ``Outages`` keeps a
``Backoff`` per queue for a worker whose queues live on several Redis Cluster nodes, so that
one node being away pauses that queue's claims while the others go on.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from ..exceptions import clause

logger = logging.getLogger("django_convoy.worker")

# Waits between tries while Redis is unreachable. The cap is short because an outage usually
# ends with a restart or a failover, and every second after it that a worker sleeps on is a
# second its queues stand still; a few tries a second per process is no load on a server that
# is coming back.
BACKOFF_FIRST, BACKOFF_CAP = 0.1, 2.0  # seconds
OUTAGE_REMINDER = 60.0  # seconds between the "still failing" lines of one outage


class Backoff:
    """Jittered exponential waits while a step keeps failing (Redis unreachable, or refusing),
    so a failure is never a busy loop and many workers do not retry in step. ``what`` names the
    step in the log. A run of failures is logged when it begins, every ``OUTAGE_REMINDER``
    seconds while it lasts, and when it ends: a 2 s cap must not become a line every 2 s."""

    def __init__(self, what: str, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP):
        self.what, self.first, self.cap, self.current = what, first, cap, 0.0
        self.tries = 0
        self.began = self.reminded = 0.0  # monotonic, while tries > 0

    def wait(self, event: threading.Event, exc: Exception) -> None:
        event.wait(self.next(exc))

    def next(self, exc: Exception) -> float:
        """Log ``exc`` if it is news and return how long to wait before the next try."""
        now = time.monotonic()
        reason = clause(exc)  # convoy's messages are sentences; these lines go on
        self.current = min(self.cap, self.current * 2 or self.first)
        wait = self.current * random.uniform(0.5, 1.0)
        self.tries += 1
        if self.tries == 1:
            self.began = self.reminded = now
            logger.error(
                "%s failed: %s; retrying in %.1f s, then at most every %.0f s",
                self.what,
                reason,
                wait,
                self.cap,
            )
        elif now - self.reminded >= OUTAGE_REMINDER:
            self.reminded = now
            logger.error(
                "%s still failing after %.0f s and %d tries: %s; retrying",
                self.what,
                now - self.began,
                self.tries,
                reason,
            )
        return wait

    def reset(self) -> None:
        """A try succeeded: log the end of the failures, if there were any."""
        if self.tries:
            logger.warning(
                "%s works again, after %.1f s and %d failed tries",
                self.what,
                time.monotonic() - self.began,
                self.tries,
            )
        self.current, self.tries = 0.0, 0


class Outages:
    """Which queues' nodes are away: skip their claims while their backoff runs, logging each
    outage as ``Backoff`` does (when it begins, once a minute, when it ends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retry_at: dict[str, float] = {}
        self._backoffs: dict[str, Backoff] = {}

    def skipping(self, queue: str) -> bool:
        """Whether to leave ``queue`` alone for now (its node failed a moment ago)."""
        return self._retry_at.get(queue, 0.0) > time.monotonic()

    def failed(self, queue: str, exc: Exception, what: str) -> None:
        """Record that ``what`` failed for ``queue``; the other queues go on."""
        with self._lock:
            backoff = self._backoffs.setdefault(queue, Backoff(f"{queue}: {what}"))
            self._retry_at[queue] = time.monotonic() + backoff.next(exc)

    def recovered(self, queue: str) -> None:
        """Record that ``queue`` answered again."""
        if queue not in self._backoffs:
            return
        with self._lock:
            backoff = self._backoffs.pop(queue, None)
            self._retry_at.pop(queue, None)
        if backoff is not None:
            backoff.reset()

    def away(self) -> bool:
        """Whether any queue's node is away now."""
        return bool(self._backoffs)
