"""The executors: threads that run jobs, one at a time each, on the thread or in a child.

A thread cannot be killed: a timed-out thread runs its job to the end (its outcome discarded)
while a fresh executor takes its slot. (With ``--pool processes`` there are no executors: the
children run their jobs themselves, ``process_pool.py``.)

Quarantine: a job back from a jam (its worker died, or stalled past the lease, while running
it) may be what killed that worker, or may only have been running beside what did. Its last
chance, the run after its MAX_JAMS-th jam (one more would fail it as jammed), runs in
quarantine with ``--pool threads``: in a child process of the worker's ``Quarantine`` (at most
``QUARANTINE_CHILDREN`` at once). If it kills its process again, only that child dies, and the
job fails as a crash, under MAX_ATTEMPTS; a job that was only running beside it completes
there. Not from its first jam: most are no job's doing (a deploy, the OOM killer, a lost
machine), and a child takes a while to start, which a worker that keeps dying may not give
it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .execution import error_record, execute
from .pool import ChildDied, ChildProcess, Quarantine
from .state import ActiveRun, Outcome, WorkerState

POOLS = ("threads", "processes")  # the worker's choice; executors serve "threads"
QUARANTINE_CHILDREN = 4  # per worker: each is a process with Django set up


class Executors:
    """Start, run and retire the worker's executor threads."""

    def __init__(
        self,
        state: WorkerState,
        start_thread: Callable[[Callable[[], None], str], threading.Thread],
        wake_keeper: Callable[[float], None],
    ):
        self.state = state
        self._start_thread = start_thread
        self._wake_keeper = wake_keeper  # a run's deadline may be sooner than the keeper's
        self.children: list[ChildProcess] = []  # lock (state's)
        # Last chances (runs after MAX_JAMS jams), on --pool threads: in the quarantine's children.
        self.quarantine = Quarantine(
            state.id, min(QUARANTINE_CHILDREN, sum(state.slots.values())), self.children, state.lock
        )
        self._retired: set[threading.Thread] = set()  # lock; executors that end after this run
        self.started = 0  # how many executor threads were started (shutdown sends each a None)

    def start(self) -> None:
        """Start one more executor."""
        self.started += 1
        self._start_thread(self._loop, "convoy-executor")

    def replace(self, active: ActiveRun) -> None:
        """``active`` timed out or lost its lease: kill its quarantine child, or retire its
        thread and give its slot to a fresh one (a thread cannot be stopped; it exits after
        the job)."""
        if isinstance(active.child, ChildProcess):
            active.child.kill()  # its executor starts a fresh child and carries on
            return
        with self.state.lock:
            if not active.began:  # abandoned before it began (claimed ahead, waiting): it
                return  # never will, and whichever executor takes it goes on at once
            if active.thread is not None:
                self._retired.add(active.thread)
        self.start()

    def kill_children(self) -> None:
        """Kill the quarantine's children still running a job (shutdown, after the grace)."""
        with self.state.lock:
            running = [a.child for a in self.state.runs.values() if a.executing and a.child]
        for child in running:
            child.kill()

    def stop_children(self, patience: float = 2.0) -> None:
        """Give idle children ``patience`` seconds to exit as asked, then kill what is left.
        Children ignore SIGTERM (a signal meant for the worker must not kill a job), and
        multiprocessing's exit waits for every child: one left alive would hang the worker."""
        deadline = time.monotonic() + patience
        with self.state.lock:
            children = list(self.children)
        for child in children:
            child.retire(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        me = threading.current_thread()
        while (active := self.state.work.get()) is not None:
            active.thread = me
            self.state.done.put(self._execute(active))
            with self.state.lock:
                if me in self._retired:
                    return

    def _execute(self, active: ActiveRun) -> Outcome:
        if not self._quarantined(active):
            return self._execute_here(active)
        child = None if active.abandoned else self.quarantine.take()  # may wait for one
        try:
            with self.state.lock:
                if active.abandoned:  # handed back, or its lease lost, while it waited
                    active.executing = False
                    return Outcome(active, None, None, 0.0)
                active.child = child  # the keeper kills it at the job's timeout
            return self._execute_here(active)
        finally:
            if child is not None:
                self.quarantine.give_back(child)

    def _quarantined(self, active: ActiveRun) -> bool:
        """Whether the run is its job's last chance, so executes in quarantine (module doc)."""
        if not active.run.jams:
            return False
        return active.run.jams >= self.state.queues[active.run.queue].config.max_jams

    def _execute_here(self, active: ActiveRun) -> Outcome:
        run, started = active.run, time.perf_counter()
        final: bool | None = None  # a crash: the queue's rule decides, as for a timeout
        try:
            if active.child is not None:
                active.child.wait_ready()
            if not self._begin(active):  # handed back while its child set up: it never runs
                return Outcome(active, None, None, time.perf_counter() - started)
            if active.child is None:
                error, final, seconds = execute(run, self.state.id, lost=active.lost)
            else:
                error, final, seconds = active.child.run(run)
        except ChildDied as exc:
            seconds = time.perf_counter() - started
            error = error_record(run, exc, "crash", self.state.id)
            error["traceback"] = ""
        except Exception as exc:
            # The pool itself failed (no child could start, say): fail the run, rather than
            # lose this executor and leave the run held for good.
            error = error_record(run, exc, "crash", self.state.id)
            seconds = time.perf_counter() - started
        finally:
            with self.state.lock:  # against the keeper timing it out at this very moment
                active.executing = False  # its slot stays taken until the reporter is done
        return Outcome(active, error, final, seconds)

    def _begin(self, active: ActiveRun) -> bool:
        """Mark the job begun and start its timeout (its task's, else JOB_TIMEOUT) when it
        really starts (a new child takes a while to be ready); False if it was abandoned first."""
        timeout = active.timeout = self.state.queues[active.run.queue].timeout_of(active.run)
        with self.state.lock:
            if active.abandoned:
                return False
            active.began = True
        if timeout:
            active.deadline = time.monotonic() + timeout
            self._wake_keeper(active.deadline)
        return True
