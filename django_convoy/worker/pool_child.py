"""A ``--pool processes`` child: a worker of one slot and one queue, in a process of its own.

It claims a run, runs the job on its own main thread, and acks it in the script call that
claims the next one (``ack_and_claim``): a job costs the child one round trip and the worker
nothing, where a child that was handed each job over a pipe cost the worker two thread
hand-offs, two pipe messages and its own claims and acks. Blocking, hand-offs (an add hands a
job straight to the idle child), ``--burst``, ``--max-jobs`` (shared among the children) and
a claim whose reply was lost work as on the worker's threads (``claimer.py``).

What a child must not decide for itself stays with the worker, which reads the child's slot
(``slot.py``): it renews the leases of what the child holds (a job holding the GIL cannot stop
that), kills the child at its job's timeout or once its lease is lost (a cancel), hands its run
back after the grace when stopping, and fails the run a dead child was running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawValue
from typing import Any

import redis

from ..connection import reporting_unavailable
from ..exceptions import RedisFull, RedisUnavailable
from ..health import DataMarkWatch
from ..ids import shown
from ..store import ClaimBatch, Run, wait_for_work
from .ahead import AHEAD, HAND_BACK_AFTER_SECONDS, all_short
from .backoff import Backoff
from .claimer import HAND_OFF_WAIT_MS, IDLE_BLOCK_SECONDS, READING_KEYS
from .execution import execute, finished
from .pool import WORKER_SIGNALS, exit_when_orphaned
from .reporter import announce_acks, log_acks, report_failure
from .slot import ACKING, REPORTING, Slot

logger = logging.getLogger("django_convoy.worker")

PERMIT_WAIT_SECONDS = 1.0  # a child killed while holding the permits' lock must not hang the rest


@dataclass
class PoolControl:
    """What the worker shares with all its children: its stop, and ``--max-jobs``' count."""

    stop: Any = field(default_factory=lambda: RawValue(ctypes.c_int, 0))
    permits: Any = None  # a multiprocessing Value: claims left, with its lock; None: no limit
    log_level: int = logging.WARNING
    log_format: str | None = None  # the worker's own handler's format; None: Django's LOGGING

    @property
    def stopping(self) -> bool:
        """Whether the worker is stopping (children claim no more)."""
        return bool(self.stop.value)


class SlotWorker:
    """The child's loop: claim one run, run it, ack it with the next claim (module doc)."""

    def __init__(self, queue: str, worker_id: str, slot: Slot, control: PoolControl, burst: bool):
        from ..queue import get_queue

        self.q = get_queue(queue)
        self.id = worker_id
        self.slot = slot
        self.control = control
        self.burst = burst
        self.hand_offs = not burst and control.permits is None
        self.runs: list[Run] = []  # lock; claimed, not started
        # Held by the main thread around the slot's writes and the start of each run, and by
        # the watch thread while it hands back runs claimed ahead: a run is either started or
        # handed back, never both.
        self.lock = threading.Lock()
        self.running_since: float | None = None  # lock; monotonic, while a job runs
        self.ahead = False  # whether the next claim claims ahead (AHEAD)
        self.ahead_ok = False  # the last job was short
        self.acks: list[tuple[Run, float]] = []  # done, to ack with the next claim
        self.waiting = False  # the request to be handed a job stands
        self.unsure = False  # a claim's reply may have been lost
        self.next_due: float | None = None  # seconds until the next scheduled job is due
        self.data_marks = DataMarkWatch()
        self.claims = Backoff(f"{queue}: claiming")

    def run(self) -> None:
        """Serve until the worker stops (or, with ``burst``, the queue is empty)."""
        threading.Thread(target=self._watch_ahead, daemon=True, name="convoy-ahead").start()
        while True:
            stopping = self.control.stopping
            if self.runs:
                if stopping:
                    with self.lock:
                        self._hand_back(self.runs)
                else:
                    self._execute_next()
                continue
            want = 0 if stopping else self._reserve(1 + AHEAD * self.ahead)
            try:
                claimed = self._report_and_claim(want)
            except RedisUnavailable as exc:
                self._unreserve(want)
                time.sleep(self.claims.next(exc))
                continue
            except redis.ResponseError as exc:  # a corrupt key: say so, and try again later
                self._unreserve(want)
                time.sleep(self.claims.next(RedisUnavailable(f"{READING_KEYS}: {exc}")))
                continue
            self.claims.reset()
            if claimed:
                continue
            if stopping or self.burst or not want:
                self._withdraw()
                return
            self._block()

    # -- claiming and acking ------------------------------------------------------------------

    def _report_and_claim(self, want: int) -> int:
        """Ack the runs done, claim up to ``want`` in the same call; return how many it got."""
        q = self.q
        if self.unsure:
            known = [run.token for run in self.slot.held]
            if released := q.release_orphans(self.id, known):
                logger.warning(
                    "%s: queued again %d runs whose claim's reply was lost: %s",
                    q.name,
                    len(released),
                    ", ".join(map(shown, released[:20])),
                )
            self.unsure = False
        fences = [(run.id, run.token) for run, _ in self.acks]
        if not fences and not want:
            return 0
        # Only a claim of one run asks to be handed jobs: a run handed to a busy child waits.
        handed = self.hand_offs and want == 1 and not self.control.stopping
        wait_ms = HAND_OFF_WAIT_MS if handed else 0
        batch: ClaimBatch | None = None
        try:
            if fences and want:
                replies, batch = q.ack_and_claim(fences, want, self.id, wait_ms=wait_ms)
            elif fences:
                replies = q.ack(fences)
            else:
                replies, batch = [], q.claim(want, self.id, wait_ms=wait_ms)
        except RedisFull:
            if not fences:
                raise
            replies = q.ack(fences)  # refused before it ran: the acks go alone (they free memory)
        except RedisUnavailable:
            self.unsure = self.unsure or bool(want)
            raise
        if fences:
            acked = self.acks
            self.acks = []
            done = log_acks(q.name, acked, replies)
            with self.lock:
                self.slot.release([run for run, _ in acked], processed=done)
            announce_acks(acked, replies, self.id)
        if batch is None:
            self._unreserve(want)
            return 0
        return self._accept(batch, want)

    def _accept(self, batch: ClaimBatch, want: int) -> int:
        self._unreserve(want - len(batch.runs))
        self.ahead = self.ahead_ok and len(batch.runs) >= want
        self.data_marks.observe(self.q.name, batch.marks, batch.now_ms)
        self.waiting = batch.waiting
        self.next_due = None
        if batch.next_due_ms is not None:
            self.next_due = max(0.0, (batch.next_due_ms - batch.now_ms) / 1000)
        with self.lock:
            if left := self.slot.hold(batch.runs):
                self._hand_back(left, held=False)
            self.runs += [run for run in batch.runs if run not in left]
        return len(batch.runs) - len(left)

    def _reserve(self, wanted: int) -> int:
        """How many of ``wanted`` runs this child may claim now (``--max-jobs``)."""
        permits = self.control.permits
        if permits is None:
            return wanted
        lock = permits.get_lock()
        if not lock.acquire(timeout=PERMIT_WAIT_SECONDS):
            return 0
        try:
            granted = max(0, min(wanted, permits.value))
            permits.value -= granted
            return granted
        finally:
            lock.release()

    def _unreserve(self, count: int) -> None:
        if count <= 0 or self.control.permits is None:
            return
        with self.control.permits.get_lock():
            self.control.permits.value += count

    # -- running ------------------------------------------------------------------------------

    def _execute_next(self) -> None:
        with self.lock:
            if not self.runs:
                return  # handed back meanwhile
            run = self.runs.pop(0)
            self.slot.start(run, self.q.timeout_of(run))
            self.running_since = time.monotonic()
        error, final, seconds = execute(run, self.id)
        self.ahead_ok = all_short([seconds])
        with self.lock:
            self.running_since = None
            self.slot.ended(run, ACKING if error is None else REPORTING)
        if error is None:
            self.acks.append((run, seconds))
            return
        reports = Backoff(f"{run.queue}: reporting a failure")
        while True:
            try:
                verdict = report_failure(self.q, run, error, final, seconds)
            except RedisUnavailable as exc:
                time.sleep(reports.next(exc))  # the worker renews its lease meanwhile
                continue
            reports.reset()
            break
        with self.lock:
            self.slot.release([run], failed=int(verdict in ("failed", "rerun")))
        ended = "failed" if verdict == "rerun" else verdict  # a rerun queued: failed all the same
        finished(run, self.id, ended, seconds, error)

    # -- waiting and stopping -----------------------------------------------------------------

    def _block(self) -> None:
        """Wait for work: a wake-up, a job handed to this child, or the next one falling due."""
        timeout = (
            IDLE_BLOCK_SECONDS if self.next_due is None else min(IDLE_BLOCK_SECONDS, self.next_due)
        )
        if timeout <= 0:
            return
        inbox = self.q.store.inbox(self.id)
        keys = [inbox, self.q.keys.wake] if self.waiting else [self.q.keys.wake]
        try:
            with reporting_unavailable(self.q.client):
                popped = wait_for_work(self.q.client, keys, timeout)
        except RedisUnavailable as exc:
            self.unsure = self.unsure or self.waiting  # a handed run may have been popped
            time.sleep(self.claims.next(exc))
            return
        except redis.ResponseError as exc:  # WRONGTYPE: a list replaced (by hand?)
            time.sleep(self.claims.next(RedisUnavailable(f"{READING_KEYS}: {exc}")))
            return
        if popped is not None and popped[0] == inbox:
            run = self.q.handed_run(popped[1])
            with self.lock:
                if self.slot.hold([run]):
                    self._hand_back([run], held=False)
                else:
                    self.runs.append(run)

    def _watch_ahead(self) -> None:
        """Hand back the runs claimed ahead of a job that turned out long (``ahead.py``)."""
        while True:
            time.sleep(HAND_BACK_AFTER_SECONDS / 2)
            with self.lock:
                since = self.running_since
                if since is None or not self.runs:
                    continue
                if time.monotonic() - since >= HAND_BACK_AFTER_SECONDS:
                    self._hand_back(self.runs)

    def _hand_back(self, runs: list[Run], held: bool = True) -> None:
        """Return runs that never started (the worker is stopping, or they were claimed ahead
        of a long job), giving their attempts back; the jam guard recovers them if Redis is
        away. Under ``lock``."""
        runs = list(runs)
        try:
            self.q.handback([(run.id, run.token) for run in runs], started=False)
        except RedisUnavailable as exc:
            logger.error(
                "%s: could not hand back %d runs that never started (%s); the jam guard will "
                "recover them",
                self.q.name,
                len(runs),
                exc,
            )
        if held:
            self.slot.release(runs)
        self.runs = [run for run in self.runs if run not in runs]

    def _withdraw(self) -> None:
        """Take back the request to be handed jobs (runs handed meanwhile go back unstarted)."""
        if not self.hand_offs:
            return
        try:
            handed = self.q.claim(0, self.id).runs
        except (RedisUnavailable, redis.ResponseError) as exc:
            logger.error(
                "%s: could not take back the request to be handed jobs (%s); it lapses in %d ms",
                self.q.name,
                exc,
                HAND_OFF_WAIT_MS,
            )
            return
        if handed:
            with self.lock:
                self._hand_back(handed, held=False)


def child_main(queue: str, worker_id: str, slot: Slot, control: PoolControl, burst: bool) -> None:
    """A pool child's life: ignore the worker's signals (the worker decides when a child stops),
    die with the worker, set Django up, then serve (``SlotWorker``)."""
    for signum in WORKER_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    threading.Thread(target=exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    import django

    django.setup()
    _log_like_the_worker(control)
    SlotWorker(queue, worker_id, slot, control, burst).run()
    sys.stdout.flush()


def _log_like_the_worker(control: PoolControl) -> None:
    """Log as the worker's command does (``convoy_worker`` sets a handler up in the worker
    only), unless the project's LOGGING configured convoy's logger."""
    if control.log_format is None:
        return
    convoy = logging.getLogger("django_convoy")
    if convoy.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(control.log_format))
    convoy.addHandler(handler)
    convoy.setLevel(control.log_level)
    convoy.propagate = False
