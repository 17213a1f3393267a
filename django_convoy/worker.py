"""The worker: claims runs in batches, executes them on threads, reports them in batches.

Four kinds of thread share one ``Worker``:

- the claim loop (``run()``'s thread) claims up to the free slots of each queue in one script
  call per queue, and blocks on the queues' wake lists when there is nothing to claim. A
  claim that leaves room asks to be handed the jobs added meanwhile (as many as there is room
  for), so it blocks on its inboxes too: a job added to an idle worker starts after the add's
  round trip alone;
- executor threads run jobs, one at a time each;
- the reporter (``reporter.py``) acks (or fails) finished runs, many per script call, and
  claims as many new runs in the same call while there is work: a finished run's slot stays
  taken until its outcome is reported, then passes straight to a new run or becomes free;
- the keeper (``keeper.py``) renews leases, sends heartbeats, times out overlong runs and runs
  the jam guard.

This module holds their shared state, the claim loop, the executors and shutdown.

Signals are the caller's business (the ``convoy_worker`` command); ``request_stop()`` and
``request_abort()`` only set flags, so they are safe to call from a signal handler.
"""

from __future__ import annotations

import logging
import os
import queue as stdqueue
import socket
import threading
import time
from collections.abc import Callable, Iterable

import redis

from . import connection, wake
from .exceptions import RedisUnavailable
from .execution import error_record, execute
from .health import DataMarkWatch, eviction_warning
from .job import ClaimedJob
from .keeper import Keeping
from .keys import inbox_key
from .pool import ChildDied, ChildProcess
from .queue import ClaimBatch, Queue, get_queue
from .reporter import Reporting
from .runs import Backoff, Outcome, Run

logger = logging.getLogger(__name__)

IDLE_BLOCK_SECONDS = 1.0  # longest wait on the wake lists; bounds how late a stop is noticed
# How long a request to be handed a job stands: a second past the longest block, after which
# the claim loop claims, and asks, again. A worker that died waiting is handed no more after it.
HAND_OFF_WAIT_MS = int((IDLE_BLOCK_SECONDS + 1) * 1000)
BUSY_QUEUE_RECHECK_SECONDS = 0.05
POOLS = ("threads", "processes")


class Worker(Reporting, Keeping):
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
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, not {pool!r}.")
        self.pool = pool
        self.queues: dict[str, Queue] = {name: get_queue(name) for name in queues}
        if not self.queues:
            raise ValueError("A worker needs at least one queue.")
        self.slots = {name: concurrency or q.config.concurrency for name, q in self.queues.items()}
        self.burst, self.max_jobs, self.grace, self.run_jam_guard = (
            burst,
            max_jobs,
            grace,
            jam_guard,
        )
        self.id = f"{socket.gethostname()}.{os.getpid()}.{os.urandom(3).hex()}"
        self.processed = self.failed = 0
        self.client = next(iter(self.queues.values())).client
        self.key_prefix = next(iter(self.queues.values())).key_prefix
        lease = min(q.config.lease for q in self.queues.values())
        self.keep_interval = max(0.05, lease / 3)

        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], Run] = {}
        self._busy = dict.fromkeys(self.queues, 0)  # slots taken, per queue
        self._claimed = 0  # runs claimed so far, for max_jobs
        # Held around every claim (the claim loop's, the reporter's): max_jobs stays exact,
        # shutdown can wait for a claim in flight, and orphans are looked for between claims.
        self._claiming = threading.Lock()
        self._unsure: set[str] = set()  # queues whose last claim may have lost its reply
        self._work: stdqueue.SimpleQueue[Run | None] = stdqueue.SimpleQueue()
        self._done: stdqueue.SimpleQueue[Outcome | None] = stdqueue.SimpleQueue()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._slot_freed = threading.Event()
        self._keeper_wake = threading.Event()
        self._keeper_stop = threading.Event()
        self._keeper_due = 0.0
        self._retired: set[threading.Thread] = set()
        self._threads: list[threading.Thread] = []
        self._children: list[ChildProcess] = []
        self._data_marks = DataMarkWatch()
        # Queues in several Redis Cluster slots: a waiter thread per queue instead of one
        # BLPOP, and a queue whose node is away does not hold up the others (wake.py).
        spread = wake.spread_over_slots(self.client, [q.keys.wake for q in self.queues.values()])
        self._outages = wake.Outages() if spread else None
        self._waiters: wake.WakeWaiters | None = None  # started when first idle
        # Whether claims ask to be handed the next job while the claim loop waits: not when it
        # never blocks (burst), cannot block on one list (several cluster slots), or must count
        # each claim exactly (max_jobs: a handed run and a reporter's claim can cross).
        self._hand_offs = not burst and max_jobs is None and self._outages is None
        # Queues whose last claim's request stands; replaced, never changed in place, so the
        # claim loop can read it while the reporter's claims update it.
        self._waiting: frozenset[str] = frozenset()

    # -- control (safe from signal handlers: they only set flags) ---------------------------

    def request_stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period."""
        self._stop.set()
        self._slot_freed.set()

    def request_abort(self) -> None:
        """Stop now: hand unfinished runs back without waiting."""
        self._abort.set()
        self.request_stop()

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Work until stopped; on the way out, hand back what did not finish."""
        for _ in range(sum(self.slots.values())):
            self._start_executor()
        self._start(self._report_loop, "convoy-reporter")
        keeper = self._start(self._keep_loop, "convoy-keeper")
        logger.info(
            "worker %s serving %s",
            self.id,
            ", ".join(f"{name} (x{n})" for name, n in self.slots.items()),
        )
        if warning := eviction_warning(self.client):
            logger.warning(warning)
        try:
            self._claim_loop()
        finally:
            self._shut_down(keeper)

    def _start(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _start_executor(self) -> None:
        self._start(self._execute_loop, "convoy-executor")

    def _claim_loop(self) -> None:
        # Apart, so that claims that work and waits that fail (or the other way round) do not
        # log a failure and a recovery on every turn.
        claims, waits = Backoff("claiming"), Backoff("waiting for jobs")
        while not self._stop.is_set():
            try:
                got, any_free, next_due = self._claim_round()
            except RedisUnavailable as exc:
                claims.wait(self._stop, exc)
                continue
            claims.reset()
            if self.max_jobs is not None and self._claimed >= self.max_jobs:
                return
            if got:
                continue
            if not any_free:
                self._wait_for_slot(IDLE_BLOCK_SECONDS)
            elif self.burst:
                if not self._busy_total() and not (self._outages and self._outages.away()):
                    return
                self._wait_for_slot(0.5)
            else:
                try:
                    self._block_for_work(next_due)
                except RedisUnavailable as exc:
                    waits.wait(self._stop, exc)
                else:
                    waits.reset()

    def _claim_round(self) -> tuple[int, bool, float | None]:
        """Claim from every queue with free slots; return (claimed, any free, next due in s)."""
        got, any_free, next_due = 0, False, None
        for name, q in self.queues.items():
            # One claim at a time, this loop's or the reporter's: max_jobs stays exact.
            with self._claiming:
                free = self._claimable(name, self.slots[name] - self._busy[name])
                if free <= 0:
                    continue
                any_free = True
                batch = self._claim(name, q, free)
                if batch is None:
                    continue
                self._accept(q, batch)
            if batch.next_due_ms is not None:
                due_in = max(0.0, (batch.next_due_ms - batch.now_ms) / 1000)
                next_due = due_in if next_due is None else min(next_due, due_in)
            got += len(batch.jobs)
        return got, any_free, next_due

    def _claim(self, name: str, q: Queue, free: int) -> ClaimBatch | None:
        """Claim up to ``free`` runs of ``q``; None when its node is away (in a cluster, the
        other queues go on) or Redis refused the script."""
        if self._outages is not None and self._outages.skipping(name):
            return None
        try:
            if name in self._unsure:
                self._release_orphans(name, q)
            batch = q.claim(free, self.id, wait_ms=self._wait_ms())
        except RedisUnavailable as exc:
            self._unsure.add(name)  # the claim may have run, and its reply been lost
            if self._outages is None:
                raise
            self._outages.failed(name, exc, "claiming")
            return None
        except redis.ResponseError as exc:
            # A script error means a convoy key holds something it cannot read (written by
            # hand?): say so, and keep serving the other queues.
            logger.error("%s: Redis refused the claim (%s); is a convoy key corrupt?", name, exc)
            return None
        if self._outages is not None:
            self._outages.recovered(name)
        return batch

    def _release_orphans(self, name: str, q: Queue) -> None:
        """After a claim whose reply may have been lost: queue again the runs Redis holds for
        this worker that it never heard of, now rather than a lease later by the jam guard.
        Only while no claim is in flight (``_claiming``), or a reply on its way would look lost.
        """
        with self._lock:
            known = [run.job.token for run in self._runs.values() if run.job.queue == name]
        released = q.release_orphans(self.id, known)
        self._unsure.discard(name)
        if released:
            logger.warning(
                "%s: queued again %d runs whose claim's reply was lost: %s",
                name,
                len(released),
                ", ".join(released[:20]),
            )

    def _wait_ms(self) -> int:
        """How long the next claim asks to be handed a job if it finds none (0: it does not)."""
        return HAND_OFF_WAIT_MS if self._hand_offs and not self._stop.is_set() else 0

    def _accept(self, q: Queue, batch: ClaimBatch, finished: Iterable[Run] = ()) -> None:
        """Take on what a claim returned (under ``_claiming``)."""
        self._data_marks.observe(q.name, batch.marks, batch.now_ms)
        if batch.waiting:
            self._waiting |= {q.name}
        else:
            self._waiting -= {q.name}
        self._dispatch(q, batch.jobs, finished)

    def _claimable(self, name: str, slots: int) -> int:
        """How many of ``slots`` may be filled now: none once stopping or past max_jobs."""
        if self._stop.is_set():
            return 0
        if self.max_jobs is not None:
            slots = min(slots, self.max_jobs - self._claimed)
        return max(0, slots)

    def _dispatch(self, q: Queue, jobs: list[ClaimedJob], finished: Iterable[Run] = ()) -> None:
        """Track and execute new runs, each in a slot ``finished`` runs pass on, else a free one."""
        runs = [Run(job) for job in jobs]
        with self._lock:
            donors = [run for run in finished if run.slot_held][: len(runs)]
            for donor in donors:
                donor.slot_held = False
            self._busy[q.name] += len(runs) - len(donors)
            self._claimed += len(runs)
            for run in runs:
                self._runs[(q.name, run.job.id)] = run
        for run in runs:
            self._work.put(run)

    def _block_for_work(self, next_due: float | None) -> None:
        timeout = IDLE_BLOCK_SECONDS if next_due is None else min(IDLE_BLOCK_SECONDS, next_due)
        free = [name for name in self.queues if self._busy[name] < self.slots[name]]
        if len(free) < len(self.queues):
            # A busy queue's freed slot cannot end a wait in Redis: look again soon.
            timeout = min(timeout, BUSY_QUEUE_RECHECK_SECONDS)
        if timeout <= 0:
            return
        if self._outages is not None:  # several cluster slots: no BLPOP can span them
            if self._waiters is None:
                keys = {name: q.keys.wake for name, q in self.queues.items()}
                self._waiters = wake.WakeWaiters(self.client, keys, IDLE_BLOCK_SECONDS)
            self._waiters.wait(timeout, [n for n in free if not self._outages.skipping(n)])
            return
        # Only the wake lists of queues that have room: a full queue's token is left for a
        # worker that can take its job. Inboxes first: BLPOP takes from the first list that
        # has an element, and a handed run is this worker's alone.
        inboxes = {inbox_key(self.queues[name].keys, self.id): name for name in self._waiting}
        keys = [*inboxes, *(self.queues[name].keys.wake for name in free)]
        try:
            with connection.reporting_unavailable(self.client):
                popped = self.client.blpop(keys, timeout=timeout)
        except RedisUnavailable:
            self._unsure.update(inboxes.values())  # a handed run may have been popped
            raise
        if popped is not None and popped[0] in inboxes:
            self._take_handed(self.queues[inboxes[popped[0]]], popped[1])

    def _take_handed(self, q: Queue, message: str) -> None:
        """Run a job an add handed to this worker (the claim round that follows takes any
        others handed to it, and renews its request); once stopping, hand it back unstarted."""
        job = q.handed_run(message)
        if self._stop.is_set():
            self._hand_back_unstarted(q, [job])
            return
        with self._claiming:
            self._dispatch(q, [job])

    def _wait_for_slot(self, timeout: float) -> None:
        self._slot_freed.wait(timeout)
        self._slot_freed.clear()

    def _busy_total(self) -> int:
        with self._lock:
            return sum(self._busy.values())

    def _free_slot(self, run: Run) -> None:
        with self._lock:
            if not run.slot_held:
                return
            run.slot_held = False
            self._busy[run.job.queue] -= 1
        self._slot_freed.set()

    # -- executors --------------------------------------------------------------------------

    def _execute_loop(self) -> None:
        me = threading.current_thread()
        child = None
        if self.pool == "processes":
            child = ChildProcess(self.id)
            with self._lock:
                self._children.append(child)
        while (run := self._work.get()) is not None:
            run.thread, run.child = me, child
            self._done.put(self._execute(run))
            if me in self._retired:
                return
        if child is not None:
            child.stop()

    def _execute(self, run: Run) -> Outcome:
        started = time.perf_counter()
        try:
            if run.child is not None:
                run.child.wait_ready()
            self._start_clock(run)
            if run.child is None:
                error, final, seconds = execute(run.job, self.id)
            else:
                error, final, seconds = run.child.run(run.job)
        except ChildDied as exc:
            error, final = error_record(run.job, exc, "crash", self.id), None
            error["traceback"] = ""
            seconds = time.perf_counter() - started
        except Exception as exc:
            # The pool itself failed (no child could start, say): fail the run, rather than
            # lose this executor and leave the run held for good.
            error, final = error_record(run.job, exc, "crash", self.id), None
            seconds = time.perf_counter() - started
        finally:
            with self._lock:  # against the keeper timing it out at this very moment
                run.executing = False  # its slot stays taken until the reporter is done
        return Outcome(run, error, final, seconds)

    def _start_clock(self, run: Run) -> None:
        """Start JOB_TIMEOUT when the job really starts (a new child takes a while to be ready)."""
        timeout = self.queues[run.job.queue].config.job_timeout
        if timeout:
            run.deadline = time.monotonic() + timeout
            if run.deadline < self._keeper_due:
                self._keeper_wake.set()

    # -- shutdown ---------------------------------------------------------------------------

    def _shut_down(self, keeper: threading.Thread) -> None:
        self._stop.set()
        # A claim in flight: once it returns its runs are tracked, and handed back below. A
        # second signal does not wait for it: the jam guard recovers what it claimed.
        while not self._claiming.acquire(timeout=0.05):
            if self._abort.is_set():
                logger.warning("stopping without waiting for a claim in flight")
                break
        else:
            self._claiming.release()
        if self._waiters is not None:
            self._waiters.stop()
        self._withdraw()
        deadline = time.monotonic() + self.grace
        while self._executing() and not self._abort.is_set() and time.monotonic() < deadline:
            self._abort.wait(0.05)
        self._hand_back()
        with self._lock:
            for run in self._runs.values():
                if run.executing and run.child is not None:
                    run.child.kill()
        for _ in self._threads:
            self._work.put(None)
        self._done.put(None)
        for thread in self._threads:
            if thread.name == "convoy-reporter":  # its last reports; less patience if aborting
                thread.join(timeout=1 if self._abort.is_set() else 5)
        self._keeper_stop.set()
        self._keeper_wake.set()
        keeper.join(timeout=5)
        try:
            self._deregister()
        except RedisUnavailable as exc:
            logger.error("could not deregister worker %s: %s", self.id, exc)
        logger.info(
            "worker %s stopped: %d processed, %d failed", self.id, self.processed, self.failed
        )

    def _withdraw(self) -> None:
        """Take back the requests to be handed jobs, on every queue: one may stand that no
        reply told of (lost, or of an ack that claims still in flight when aborting). Runs
        handed meanwhile never started, so they go back to their queues."""
        if not self._hand_offs:
            return
        for name, q in self.queues.items():
            try:
                self._hand_back_unstarted(q, q.claim(0, self.id).jobs)
            except (RedisUnavailable, redis.ResponseError) as exc:
                logger.error(
                    "%s: could not take back the request to be handed jobs (%s); it lapses "
                    "in %d ms, and the jam guard recovers the jobs handed meanwhile",
                    name,
                    exc,
                    HAND_OFF_WAIT_MS,
                )
        self._waiting = frozenset()

    def _hand_back_unstarted(self, q: Queue, jobs: list[ClaimedJob]) -> None:
        """Return runs handed to this worker after it began to stop, giving their attempts
        back (none of them started); the jam guard recovers them if Redis is away."""
        if not jobs:
            return
        try:
            q.handback([(job.id, job.token) for job in jobs], started=False)
        except RedisUnavailable as exc:
            logger.error(
                "%s: could not hand back %d runs handed to a stopping worker (%s); the jam "
                "guard will recover them",
                q.name,
                len(jobs),
                exc,
            )

    def _executing(self) -> list[Run]:
        with self._lock:
            return [r for r in self._runs.values() if r.executing and not r.abandoned]

    def _hand_back(self) -> None:
        unfinished = self._executing()
        by_queue: dict[str, list[Run]] = {}
        for run in unfinished:
            run.abandoned = "handed back at shutdown"
            by_queue.setdefault(run.job.queue, []).append(run)
        for name, runs in by_queue.items():
            try:
                replies = self.queues[name].handback([(r.job.id, r.job.token) for r in runs])
            except RedisUnavailable as exc:
                logger.error(
                    "%s: could not hand back %d runs (%s); the jam guard will recover them",
                    name,
                    len(runs),
                    exc,
                )
                continue
            for run, reply in zip(runs, replies, strict=True):
                logger.warning(
                    "%s %s: %s",
                    name,
                    run.job.id,
                    "handed back to the queue" if reply else "already taken over",
                )
