"""What a worker's parts share: the runs it holds, its slots, its flags, and how runs ended.

One ``WorkerState`` per worker. Each field says which threads write it; a field marked
*lock* is read and written under ``lock`` only.
"""

from __future__ import annotations

import queue as stdqueue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..queue import ConvoyQueue
from ..store import Run


@dataclass(eq=False)
class ActiveRun:
    """A run the worker holds, from its claim until Redis has its outcome."""

    run: Run
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic; from its timeout, set by its executor
    timeout: float = 0.0  # its task's timeout, else JOB_TIMEOUT; set by its executor
    executing: bool = True  # lock; False once its executor is done with it
    # lock; set by its executor when the job's code is about to run (with --pool processes, once
    # its child has set Django up): a run handed back before that gives its attempt back.
    began: bool = False
    slot_held: bool = True  # lock; its slot passes on once its outcome is reported
    # lock; set once its outcome must not be reported: timed out, handed back, or lease lost.
    abandoned: str = ""
    thread: threading.Thread | None = None  # the executor running it
    # The child process running it: a quarantine's ChildProcess, or a --pool processes child.
    child: Any = None
    # Set with abandoned: its job's current_job().cancelled reads it (threads pool).
    lost: threading.Event = field(default_factory=threading.Event)

    @property
    def fence(self) -> tuple[str, str]:
        """(id, token): how scripts tell that this run still holds its job."""
        return self.run.id, self.run.token


@dataclass(frozen=True)
class Outcome:
    """How a run ended on its executor."""

    active: ActiveRun
    error: dict[str, Any] | None
    # Whether a failure is the job's last (retries.failure_is_final); None when the job's code
    # did not say (its child died): the queue's rule decides from the attempts.
    final: bool | None
    seconds: float


class WorkerState:
    """The state the claimer, executors, reporter and keeper share (see ``worker.py``)."""

    def __init__(
        self,
        worker_id: str,
        queues: dict[str, ConvoyQueue],
        slots: dict[str, int],
        max_jobs: int | None,
    ):
        self.id = worker_id  # set once
        self.queues = queues  # set once
        self.slots = slots  # set once: slots per queue
        self.max_jobs = max_jobs  # set once
        self.lock = threading.Lock()
        # lock. Keyed by (queue, token): a job claimed again while an abandoned run of it
        # still executes here is a second entry, and both stay watched.
        self.runs: dict[tuple[str, str], ActiveRun] = {}
        self.busy = dict.fromkeys(queues, 0)  # lock; slots taken, per queue
        self.claimed = 0  # lock; runs claimed so far, for max_jobs
        self.processed = self.failed = 0  # lock; reporter and keeper count
        # Held around every claim (the claim loop's, the reporter's): max_jobs stays exact,
        # shutdown can wait for a claim in flight, and orphans are looked for between claims.
        self.claiming = threading.Lock()
        self.unsure: set[str] = set()  # claiming; queues whose last claim may have lost its reply
        # claiming; queues whose last claim's request to be handed jobs stands. Replaced, never
        # changed in place, so the claim loop can read it while the reporter's claims update it.
        self.waiting: frozenset[str] = frozenset()
        self.work: stdqueue.SimpleQueue[ActiveRun | None] = stdqueue.SimpleQueue()
        self.done: stdqueue.SimpleQueue[Outcome | None] = stdqueue.SimpleQueue()
        self.stop = threading.Event()  # signal handler (through Worker), shutdown
        self.abort = threading.Event()  # signal handler, a thread that died
        self.slot_freed = threading.Event()  # reporter, keeper; the claim loop waits on it
        self.fatal = ""  # a thread that died unexpectedly says why (worker.py)

    def claimable(self, name: str, slots: int) -> int:
        """How many of ``slots`` may be filled now: none once stopping or past max_jobs."""
        if self.stop.is_set():
            return 0
        if self.max_jobs is not None:
            slots = min(slots, self.max_jobs - self.claimed)
        return max(0, slots)

    def track(self, queue: str, runs: list[Run], finished: list[ActiveRun]) -> list[ActiveRun]:
        """Start tracking new runs, each in a slot a ``finished`` run passes on, else a free
        one; return them, to be executed."""
        active = [ActiveRun(run) for run in runs]
        with self.lock:
            donors = [done for done in finished if done.slot_held][: len(active)]
            for donor in donors:
                donor.slot_held = False
            self.busy[queue] += len(active) - len(donors)
            self.claimed += len(active)
            for one in active:
                self.runs[(queue, one.run.token)] = one
        return active

    def free_slot(self, active: ActiveRun) -> None:
        """The run no longer needs its slot (its outcome is in, or it was abandoned)."""
        with self.lock:
            if not active.slot_held:
                return
            active.slot_held = False
            self.busy[active.run.queue] -= 1
        self.slot_freed.set()

    def forget(self, active: ActiveRun) -> None:
        """The run's outcome is reported (or never will be): free its slot, stop tracking it."""
        self.free_slot(active)
        with self.lock:
            self.runs.pop((active.run.queue, active.run.token), None)

    def forget_all(self, actives: list[ActiveRun]) -> None:
        """``forget`` many runs under one lock (the reporter's acks)."""
        freed = False
        with self.lock:
            for active in actives:
                if active.slot_held:
                    active.slot_held = False
                    self.busy[active.run.queue] -= 1
                    freed = True
                self.runs.pop((active.run.queue, active.run.token), None)
        if freed:
            self.slot_freed.set()

    def count(self, processed: int = 0, failed: int = 0) -> None:
        """Add to the totals the heartbeat reports."""
        with self.lock:
            self.processed += processed
            self.failed += failed

    def busy_total(self) -> int:
        """Slots taken over all queues."""
        with self.lock:
            return sum(self.busy.values())

    def executing(self) -> list[ActiveRun]:
        """Runs whose job is still running here and whose outcome still counts."""
        with self.lock:
            return [a for a in self.runs.values() if a.executing and not a.abandoned]

    def held(self) -> dict[str, list[ActiveRun]]:
        """The runs whose leases must be renewed, per queue."""
        found: dict[str, list[ActiveRun]] = {}
        with self.lock:
            for active in self.runs.values():
                if not active.abandoned:
                    found.setdefault(active.run.queue, []).append(active)
        return found

    def abandon(self, active: ActiveRun, why: str) -> bool:
        """Mark a still executing run's outcome as not to be reported; False if it ended first."""
        with self.lock:
            if not active.executing or active.abandoned:
                return False
            active.abandoned = why
        active.lost.set()
        return True
