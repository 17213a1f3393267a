"""Whether this process's contact with Redis had a gap: what a jam guard tells Redis so that it
holds recoveries while live workers renew (``store/lua/jam_guard.lua``: the hold).

After an outage (Redis restarted, paused, or cut off from its clients) every lease has expired
by Redis's clock, and the first jam guard to run would take the jobs of workers that are alive
and about to renew. A restart or a failover shows in Redis's run id; the rest only its clients
can see. So a jam guard (a worker's keeper, ``convoy_jamguard``) watches its own calls: one that
failed, or that Redis held for longer than a third of a lease, is a gap, and its next jam guard
call on each queue says so. A jam guard call that is itself held (sent while Redis was paused)
cannot say it: it carries Redis's time as this process reckons it at sending, from Redis's
last reply on that queue and the time since, and the script sees how late it runs. Either way
no jam guard then recovers anything on that queue for one lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ..exceptions import RedisUnavailable


class ContactWatch:
    """The queues whose next jam guard call must say that Redis is back from a gap."""

    def __init__(self, queues: Iterable[str], lease: float):
        self.queues = frozenset(queues)
        self.slack = lease / 3  # a call held longer than this was held by an outage
        self._owed: set[str] = set()
        self._clock: dict[str, tuple[int, float]] = {}  # queue -> (Redis ms, monotonic) seen
        self._lock = threading.Lock()

    @contextmanager
    def call(self) -> Iterator[None]:
        """Time a call to Redis: one that fails, or returns late, is a gap."""
        began = time.monotonic()
        try:
            yield
        except RedisUnavailable:
            self.gap()
            raise
        if time.monotonic() - began > self.slack:
            self.gap()

    def gap(self) -> None:
        """Contact with Redis had a gap: every queue's next jam guard call says so."""
        with self._lock:
            self._owed = set(self.queues)

    def owed(self, queue: str) -> bool:
        """Whether the next jam guard call on ``queue`` must say that Redis is back."""
        return queue in self._owed

    def saw(self, queue: str, redis_ms: int) -> None:
        """A reply on ``queue`` said Redis's time was ``redis_ms``."""
        self._clock[queue] = (redis_ms, time.monotonic())

    def reckoned_ms(self, queue: str, clock: Callable[[], int]) -> int:
        """Redis's time now on ``queue``'s server, as this process reckons it; the first time,
        ``clock`` asks Redis (timed as a call: it may be held too)."""
        if queue not in self._clock:
            with self.call():
                self.saw(queue, clock())
        seen_ms, seen_at = self._clock[queue]
        return seen_ms + int((time.monotonic() - seen_at) * 1000)

    def told(self, queue: str) -> None:
        """A jam guard call on ``queue`` said so (Redis holds recoveries from then on)."""
        with self._lock:
            self._owed.discard(queue)
