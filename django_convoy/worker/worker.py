"""The worker: parts with one job each, composed around one shared ``WorkerState``.

- the claimer (``claimer.py``) claims runs in batches on the main thread, and blocks on the
  queues' wake lists and its inboxes when there is nothing to claim;
- executors (``executors.py``) run jobs, one at a time each, on threads;
- the reporter (``reporter.py``) acks (or fails) finished runs, many per script call, claiming
  as many new runs in the same call while there is work;
- the keeper (``keeper.py``) renews leases, sends heartbeats, times out overlong runs and runs
  the jam guard.

With ``--pool processes`` the claimer, executors and reporter give way to child processes
that each claim, run and ack their own runs (``process_pool.py``), whose runs the main thread
reads into the state for the keeper.

A thread that dies of an unexpected error stops the whole worker (``WorkerCrashed``), so that a
supervisor restarts it: a worker whose reporter died would heartbeat while acking nothing.
Signals are the caller's business (the ``convoy_worker`` command); ``request_stop()`` and
``request_abort()`` only set flags, so they are safe to call from a signal handler.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..exceptions import ConvoyError, RedisUnavailable
from ..health import eviction_warning, memory_warnings
from ..ids import shown
from ..queue import ConvoyQueue, get_queue
from .claimer import Claimer
from .executors import POOLS, Executors
from .keeper import Keeper
from .process_pool import ProcessPool
from .reporter import Reporter
from .state import ActiveRun, WorkerState

logger = logging.getLogger(__name__)

# After the grace period, how long shutdown waits for the reporter's last reports and the
# keeper's last step: bounds how long a stopping worker can take, whatever its jobs do.
LAST_REPORTS_SECONDS, LAST_REPORTS_ABORTED_SECONDS = 5.0, 1.0


class WorkerCrashed(ConvoyError):
    """A worker thread died of an unexpected error; the worker stopped (exit non-zero)."""


class Worker:
    """Run the jobs of one or more queues until stopped (or, with ``burst``, until empty)."""

    def __init__(
        self,
        queues: Iterable[str],
        *,
        concurrency: int | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        grace: float = 30.0,
        jam_guard: bool = True,
        pool: str = "threads",
    ):
        by_name: dict[str, ConvoyQueue] = {name: get_queue(name) for name in queues}
        if not by_name:
            raise ValueError("A worker needs at least one queue.")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, not {pool!r}.")
        self.id = f"{socket.gethostname()}.{os.getpid()}.{os.urandom(3).hex()}"
        slots = {name: concurrency or q.config.concurrency for name, q in by_name.items()}
        self.state = WorkerState(self.id, by_name, slots, max_jobs)
        self.grace = grace
        self._threads: list[threading.Thread] = []
        self.claimer = Claimer(self.state, burst, self._wake_keeper)
        self.executors = Executors(self.state, self._start, self._wake_keeper)
        self.pool = ProcessPool(self.state, burst, self._wake_keeper) if pool != "threads" else None
        give_up = self.executors.replace if self.pool is None else self.pool.give_up
        still_running = self.pool.still_running if self.pool is not None else None
        # Runs claimed ahead wait for executors: threads only (a pool's children watch their own).
        waiting = self.claimer.hand_back_waiting if self.pool is None else None
        self.keeper = Keeper(
            self.state, give_up, self.claimer.outages, jam_guard, still_running, waiting
        )
        self.reporter = Reporter(self.state, self.claimer)

    @property
    def queues(self) -> dict[str, ConvoyQueue]:
        """The queues this worker serves, by name."""
        return self.state.queues

    @property
    def client(self) -> Any:
        """The Redis client the worker talks through."""
        return self.claimer.client

    @property
    def processed(self) -> int:
        """Runs this worker finished and Redis acknowledged."""
        return self.state.processed

    @property
    def failed(self) -> int:
        """Runs of this worker that ended their job as failed."""
        return self.state.failed

    # -- control (safe from signal handlers: they only set flags) ---------------------------

    def request_stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period."""
        self.state.stop.set()
        self.state.slot_freed.set()
        if self.pool is not None:
            self.pool.control.stop.value = 1

    def request_abort(self) -> None:
        """Stop now: hand unfinished runs back without waiting."""
        self.state.abort.set()
        self.request_stop()

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Work until stopped; on the way out, hand back what did not finish. Raise
        ``WorkerCrashed`` if a thread died of an unexpected error."""
        if self.pool is not None:
            self.pool.start()
            reporter = None
        else:
            for _ in range(sum(self.state.slots.values())):
                self.executors.start()
            reporter = self._start(self.reporter.loop, "convoy-reporter")
        keeper = self._start(self.keeper.loop, "convoy-keeper")
        logger.info(
            "worker %s serving %s",
            self.id,
            ", ".join(f"{name} (x{n})" for name, n in self.state.slots.items()),
        )
        if warning := eviction_warning(self.claimer.client):
            logger.warning(warning)
        for _, warning in memory_warnings(self.claimer.client):
            logger.warning(warning)
        try:
            if self.pool is not None:
                self.pool.watch()
            else:
                self.claimer.loop()
        finally:
            self._shut_down(reporter, keeper)
        if self.state.fatal:
            raise WorkerCrashed(f"worker {self.id} stopped: {self.state.fatal}")

    def _start(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=self._guarded(target, name), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _guarded(self, target: Callable[[], None], name: str) -> Callable[[], None]:
        """``target``, whose unexpected death stops the worker instead of leaving it a zombie
        that heartbeats while a part of it is gone."""

        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: B036 - any death of a part is fatal
                logger.critical("%s died (%r): stopping the worker", name, exc, exc_info=True)
                self.state.fatal = self.state.fatal or f"{name} died: {exc!r}"
                self.request_abort()

        return guarded

    def _wake_keeper(self, deadline: float) -> None:
        self.keeper.wake_by(deadline)

    # -- shutdown ---------------------------------------------------------------------------

    def _shut_down(self, reporter: threading.Thread | None, keeper: threading.Thread) -> None:
        state = self.state
        if self.pool is not None:
            self.request_stop()
            self._shut_down_pool(keeper)
            return
        state.stop.set()
        # A claim in flight: once it returns its runs are tracked, and handed back below. A
        # second signal does not wait for it: the jam guard recovers what it claimed.
        while not state.claiming.acquire(timeout=0.05):
            if state.abort.is_set():
                logger.warning("stopping without waiting for a claim in flight")
                break
        else:
            state.claiming.release()
        self.claimer.withdraw()
        # Runs claimed ahead of the slots that have not begun go back now, unstarted.
        self.claimer.hand_back_waiting(time.monotonic(), every=True)
        deadline = time.monotonic() + self.grace
        while state.executing() and not state.abort.is_set() and time.monotonic() < deadline:
            state.abort.wait(0.05)
        self._hand_back()
        self.executors.kill_children()
        for _ in range(self.executors.started):
            state.work.put(None)
        state.done.put(None)
        aborted = state.abort.is_set()
        assert reporter is not None
        reporter.join(LAST_REPORTS_ABORTED_SECONDS if aborted else LAST_REPORTS_SECONDS)
        self.keeper.close()
        keeper.join(timeout=LAST_REPORTS_SECONDS)
        self.executors.stop_children()
        self._deregister()

    def _shut_down_pool(self, keeper: threading.Thread) -> None:
        """As ``_shut_down``, for children that claim and ack themselves: they stop claiming at
        once; the worker waits out the grace for the jobs they run, hands back those still
        running and kills their children, then lets the others ack what they finished."""
        state, pool = self.state, self.pool
        assert pool is not None
        deadline = time.monotonic() + self.grace
        while state.executing() and not state.abort.is_set() and time.monotonic() < deadline:
            pool.tick(0.05)
        pool.tick(0)  # what the children run now
        self._hand_back()
        pool.kill_running()
        aborted = state.abort.is_set()
        pool.stop(LAST_REPORTS_ABORTED_SECONDS if aborted else LAST_REPORTS_SECONDS)
        self.keeper.close()
        keeper.join(timeout=LAST_REPORTS_SECONDS)
        self._deregister()

    def _deregister(self) -> None:
        state = self.state
        try:
            self.keeper.deregister()
        except RedisUnavailable as exc:
            logger.error("could not deregister worker %s: %s", self.id, exc)
        logger.info(
            "worker %s stopped: %d processed, %d failed", self.id, state.processed, state.failed
        )

    def _hand_back(self) -> None:
        # By queue, and by whether the job began: one whose child was still setting Django up
        # never ran, so it gives its attempt back.
        groups: dict[tuple[str, bool], list[ActiveRun]] = {}
        for active in self.state.executing():
            if self.state.abandon(active, "handed back at shutdown"):
                with self.state.lock:  # abandoned, it can no longer begin
                    began = active.began
                groups.setdefault((active.run.queue, began), []).append(active)
        for (name, began), actives in groups.items():
            try:
                fences = [a.fence for a in actives]
                replies = self.state.queues[name].handback(fences, started=began)
            except RedisUnavailable as exc:
                logger.error(
                    "%s: could not hand back %d runs (%s); the jam guard will recover them",
                    name,
                    len(actives),
                    exc,
                )
                continue
            for active, reply in zip(actives, replies, strict=True):
                logger.warning(
                    "%s %s: %s",
                    name,
                    shown(active.run.id),
                    "handed back to the queue" if reply else "already taken over",
                )
