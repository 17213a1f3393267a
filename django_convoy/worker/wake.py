"""An idle worker whose queues live in several Redis Cluster slots: waking it, and going on
when one queue's node is away.

On one server, an idle worker blocks on all its queues' ``wake`` lists with one ``BLPOP``. In a
cluster every queue is a slot of its own, often on another primary, and no command spans two
slots. So each queue gets a waiter thread that blocks on that queue's list and sets an event
the claim loop waits on. A waiter blocks only while the claim loop is idle with a free slot for
its queue: a token taken by a worker that cannot use it is a token another idle worker missed.
A token a waiter takes after the claim loop stopped waiting is pushed back for the next worker.

While one primary is failing over, its queues fail and the others must not: ``Outages``
(``backoff.py``) skips a failing queue's claims for a growing while.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ..connection.cluster import is_cluster
from ..store import give_back_wake_token, wait_for_work
from .backoff import Backoff


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
                popped = wait_for_work(self._client, [key], self._block)
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
            give_back_wake_token(self._client, key)
        except Exception:  # a lost token costs an idle worker block_seconds
            pass
