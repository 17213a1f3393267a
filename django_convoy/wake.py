"""An idle worker whose queues live in several Redis Cluster slots: waking it, and going on
when one queue's node is away.

On one server, an idle worker blocks on all its queues' ``wake`` lists with one ``BLPOP``. In a
cluster every queue is a slot of its own, often on another primary, and no command spans two
slots. So each queue gets a waiter thread that blocks on that queue's list and sets an event
the claim loop waits on. A waiter blocks only while the claim loop is idle with a free slot for
its queue: a token taken by a worker that cannot use it is a token another idle worker missed.
A token a waiter takes after the claim loop stopped waiting is pushed back for the next worker.

While one primary is failing over, its queues fail and the others must not: ``Outages`` skips a
failing queue's claims for a growing while and logs once per outage, not once per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from .cluster import is_cluster
from .runs import BACKOFF_CAP, BACKOFF_FIRST, Backoff

logger = logging.getLogger(__name__)


def spread_over_slots(client: Any, wake_keys: Iterable[str]) -> bool:
    """Whether these keys live in more than one cluster slot (so one BLPOP cannot cover them)."""
    if not is_cluster(client):
        return False
    return len({client.keyslot(key) for key in wake_keys}) > 1


class WakeWaiters:
    """One blocking waiter thread per queue, and the event they wake the claim loop with."""

    def __init__(self, client: Any, wake_keys: dict[str, str], block_seconds: float):
        self._client = client
        self._keys = wake_keys
        self._block = block_seconds
        self._cond = threading.Condition()
        self._wanted: frozenset[str] = frozenset()
        self._woken = threading.Event()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._wait_loop, args=(name,), name=f"convoy-wake-{name}", daemon=True
            )
            for name in wake_keys
        ]
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float, queues: Iterable[str]) -> bool:
        """Block until a wake token of one of ``queues`` arrives or ``timeout`` s pass."""
        with self._cond:
            self._woken.clear()
            self._wanted = frozenset(queues)
            self._cond.notify_all()
        try:
            return self._woken.wait(timeout)
        finally:
            with self._cond:
                self._wanted = frozenset()

    def stop(self) -> None:
        """Let the waiters end (each after its current BLPOP, at most ``block_seconds``)."""
        self._stopping.set()
        with self._cond:
            self._wanted = frozenset()
            self._cond.notify_all()

    def _wait_loop(self, name: str) -> None:
        key, backoff = self._keys[name], Backoff(f"{name}: waiting for wake-ups")
        while True:
            with self._cond:
                while name not in self._wanted and not self._stopping.is_set():
                    self._cond.wait()
            if self._stopping.is_set():
                return
            try:
                popped = self._client.blpop([key], timeout=self._block)
            except Exception as exc:  # a waiter must outlive any error
                backoff.wait(self._stopping, exc)
                continue
            backoff.reset()
            if popped:
                with self._cond:
                    wanted = name in self._wanted
                    if wanted:
                        self._woken.set()
                if not wanted:
                    self._give_back(key)

    def _give_back(self, key: str) -> None:
        """Push a token back (the list keeps at most one) for a worker that can use it."""
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.rpush(key, "1")
            pipe.ltrim(key, 0, 0)
            pipe.execute()
        except Exception:  # a lost token costs an idle worker block_seconds
            pass


class Outages:
    """Which queues' nodes are away: skip their claims with backoff, log once per outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retry_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}

    def skipping(self, queue: str) -> bool:
        """Whether to leave ``queue`` alone for now (its node failed a moment ago)."""
        return self._retry_at.get(queue, 0.0) > time.monotonic()

    def failed(self, queue: str, exc: Exception, what: str) -> None:
        """Record that ``what`` failed for ``queue``; the other queues go on."""
        with self._lock:
            first = queue not in self._delay
            delay = min(BACKOFF_CAP, self._delay.get(queue, BACKOFF_FIRST / 2) * 2)
            self._delay[queue] = delay
            self._retry_at[queue] = time.monotonic() + delay
        log = logger.error if first else logger.debug
        log("%s: %s failed (%s); serving the other queues, retrying this one", queue, what, exc)

    def recovered(self, queue: str) -> None:
        """Record that ``queue`` answered again."""
        if queue not in self._delay:
            return
        with self._lock:
            self._delay.pop(queue, None)
            self._retry_at.pop(queue, None)
        logger.warning("%s: reachable again", queue)

    def away(self) -> bool:
        """Whether any queue's node is away now."""
        return bool(self._delay)
