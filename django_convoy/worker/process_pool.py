"""``--pool processes``: the worker's side of its children, each a worker of one slot.

The worker starts ``concurrency`` children per queue (``pool_child.py``), each claiming, running
and acking its own runs, and reads what each holds from its slot (``slot.py``) every
``WATCH_SECONDS``, into the ``WorkerState`` its keeper works from: so the keeper renews the
children's leases, sends the heartbeat with their runs, and times them out as it does a
thread's. Giving up on a run (its timeout, its lease lost, a cancel) kills its child. A child
that dies is replaced, after the worker has settled what it held: the run it was executing
fails as a crash, a run it had finished is acked, one it had not started goes back to the
queue, and anything else held under its id (a claim whose reply it never read) is queued
again at once (``release_orphans``), not a lease later.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from ..exceptions import RedisUnavailable
from ..ids import shown
from ..store import Run
from .backoff import Backoff
from .execution import error_record, finished
from .pool import ChildDied, describe_exit, spawn
from .pool_child import PoolControl, child_main
from .reporter import report_failure
from .slot import ACKING, HELD, RUNNING, Slot, SlotView
from .state import ActiveRun, WorkerState

logger = logging.getLogger("django_convoy.worker")

WATCH_SECONDS = 0.05  # how often the worker reads its children's slots
QUICK_DEATH_SECONDS = 5.0  # a child that dies sooner than this, running nothing, backs off


class PoolChild:
    """One child of the pool: its process, its slot, what the worker last read of it."""

    def __init__(self, index: int, queue: str, worker_id: str):
        self.queue = queue
        self.id = f"{worker_id}/{index}"  # its runs' holder in Redis
        self.slot = Slot()
        self.process: Any = None
        self.view: SlotView | None = None
        self.actives: dict[str, ActiveRun] = {}  # by token: its runs, as the state tracks them
        self.counted = (0, 0)  # processed, failed: what the state counts of this child already
        self.started_at = 0.0

    def start(self, control: PoolControl, burst: bool, fork: bool = False) -> None:
        """Start a child on an empty slot; ``fork``: forked if it is safe (``pool.spawn``)."""
        self.slot = Slot()
        self.view, self.counted = None, (0, 0)
        self.process = spawn(
            child_main, (self.queue, self.id, self.slot, control, burst), fork=fork
        )
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """Kill the child at once."""
        if self.process is not None and self.process.is_alive():
            self.process.kill()


class ProcessPool:
    """Start, watch, replace and stop a worker's children (module doc)."""

    def __init__(self, state: WorkerState, burst: bool, wake_keeper: Callable[[float], None]):
        self.state = state
        self.burst = burst
        self._wake_keeper = wake_keeper  # a run's deadline may be sooner than the keeper's
        convoy = logging.getLogger("django_convoy")
        handler = next((h for h in convoy.handlers if h.formatter is not None), None)
        self.control = PoolControl(
            permits=None if state.max_jobs is None else multiprocessing.Value("q", state.max_jobs),
            log_level=convoy.getEffectiveLevel(),
            log_format=handler.formatter._fmt if handler and handler.formatter else None,
        )
        self.children = [
            PoolChild(index, name, state.id)
            for index, name in enumerate(
                n for n, slots in state.slots.items() for _ in range(slots)
            )
        ]
        self._restarts = Backoff("starting a pool child")
        self.ended = False  # every child ended by itself (burst, max-jobs)

    def start(self) -> None:
        """Start every child: forked if it is safe, as it is before the worker starts a thread
        (unless it runs the scheduler, or is one of ``--processes``), so that its first jobs
        start with the worker; replacements, later, are spawned."""
        for child in self.children:
            child.start(self.control, self.burst, fork=True)

    def watch(self) -> None:
        """Until the worker stops (or, with burst or max-jobs, every child is done): read the
        slots, settle and replace the children that died."""
        while not self.state.stop.is_set() and not self.ended:
            self.tick(WATCH_SECONDS)

    def tick(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a child to end, then read every slot and settle the
        children that ended (replacing them unless the worker is stopping)."""
        alive = [child.process.sentinel for child in self.children if child.process is not None]
        if alive:
            wait(alive, timeout)
        else:
            self.state.stop.wait(timeout)
        for child in self.children:
            if child.process is None:
                continue
            if child.process.is_alive():
                self._read(child)
            else:
                self._ended(child)
        self.ended = all(child.process is None for child in self.children)

    def give_up(self, active: ActiveRun) -> None:
        """``active`` timed out or lost its lease: kill its child, if it is still running it (it
        may have finished meanwhile: a child that moved on to the next job keeps it)."""
        child = self._child_of(active)
        if child is not None and self._runs(child, active):
            child.kill()

    def still_running(self, active: ActiveRun) -> bool:
        """Whether a child runs ``active`` still, by its slot read now: the worker's view of it
        may be ``WATCH_SECONDS`` old, and a run its child acked meanwhile has its renewal
        refused for that ack, not because its lease was lost."""
        child = self._child_of(active)
        return child is not None and self._runs(child, active)

    def _child_of(self, active: ActiveRun) -> PoolChild | None:
        """The child holding ``active``: found by the run itself, as tokens count per queue and
        another queue's child may hold an equal one."""
        child = next((c for c in self.children if c.actives.get(active.run.token) is active), None)
        return child if child is not None and child.process is not None else None

    @staticmethod
    def _runs(child: PoolChild, active: ActiveRun) -> bool:
        """Whether ``child``'s slot says it runs ``active`` (a slot it was killed half-way
        through writing says it might)."""
        view = child.slot.read()
        if view is None:
            return True
        return view.running is not None and view.running.token == active.run.token

    def kill_running(self) -> None:
        """Kill the children still running a job (shutdown, once their runs are handed back)."""
        for child in self.children:
            if child.process is not None and any(a.executing for a in child.actives.values()):
                child.kill()

    def stop(self, patience: float) -> None:
        """Tell the children to stop, give them ``patience`` seconds to ack what they finished
        and exit, kill what is left, and settle what they held."""
        self.control.stop.value = 1
        deadline = time.monotonic() + patience
        while any(c.process is not None for c in self.children) and time.monotonic() < deadline:
            self.tick(WATCH_SECONDS)
        for child in self.children:
            child.kill()
        for child in self.children:
            if child.process is not None:
                child.process.join(1.0)
        self.tick(0)

    # -- reading the slots --------------------------------------------------------------------

    def _read(self, child: PoolChild) -> None:
        view = child.slot.read(child.view)
        if view is None or view is child.view:
            return
        child.view = view
        state = self.state
        running = view.running
        with state.lock:
            seen = {run.token for run in view.runs}
            for token in [t for t in child.actives if t not in seen]:
                active = child.actives.pop(token)
                state.runs.pop((active.run.queue, token), None)
            for run in view.runs:
                if run.token not in child.actives:
                    active = ActiveRun(run, executing=False, slot_held=False, child=child)
                    child.actives[run.token] = state.runs[(run.queue, run.token)] = active
            deadline = None
            for token, active in child.actives.items():
                if running is not None and token == running.token:
                    if not active.executing and not active.abandoned:
                        active.executing, active.started = True, view.started
                        active.began = True  # its child runs its job: handed back, it counts
                        active.timeout = view.timeout
                        if view.timeout:
                            active.deadline = deadline = view.started + view.timeout
                else:
                    active.executing, active.deadline = False, None
            processed, failed = view.processed - child.counted[0], view.failed - child.counted[1]
            child.counted = (view.processed, view.failed)
        state.count(processed=processed, failed=failed)
        if deadline is not None:
            self._wake_keeper(deadline)

    # -- a child that ended -------------------------------------------------------------------

    def _ended(self, child: PoolChild) -> None:
        process = child.process
        process.join()
        code = process.exitcode
        self._read(child)  # its last word; a write it died in leaves the one before
        view = child.view
        self._settle(child, view, code)
        child.process = None
        with self.state.lock:
            for token, active in child.actives.items():
                self.state.runs.pop((active.run.queue, token), None)
            child.actives.clear()
        if code == 0 or self.state.stop.is_set():
            return  # it ended by itself (burst, max-jobs, told to stop), or the worker stops
        if view is not None and view.runs:
            self._restarts.reset()  # it died of a job, not of starting
        elif time.monotonic() - child.started_at < QUICK_DEATH_SECONDS:
            why = ChildDied(f"a pool child exited at once ({describe_exit(code)})")
            self.state.stop.wait(self._restarts.next(why))
            if self.state.stop.is_set():
                return
        child.start(self.control, self.burst)

    def _settle(self, child: PoolChild, view: SlotView | None, code: int | None) -> None:
        """Settle what a dead child held (module doc); what Redis cannot take now, the jam guard
        recovers a lease later."""
        q = self.state.queues[child.queue]
        try:
            if view is not None:
                for run in view.in_state(RUNNING):
                    active = child.actives.get(run.token)
                    if active is None or not active.abandoned:
                        self._fail_crashed(child, run, code, active)
                if acked := view.in_state(ACKING):
                    replies = q.ack([(run.id, run.token) for run in acked])
                    self.state.count(processed=sum(1 for reply in replies if reply))
                if unstarted := view.in_state(HELD):
                    q.handback([(run.id, run.token) for run in unstarted], started=False)
            if released := q.release_orphans(child.id, []):
                logger.warning(
                    "%s: queued again %d runs a pool child held when it died: %s",
                    q.name,
                    len(released),
                    ", ".join(map(shown, released[:20])),
                )
        except RedisUnavailable as exc:
            logger.error(
                "%s: could not settle the runs of a pool child that died (%s); the jam guard "
                "will recover them",
                q.name,
                exc,
            )

    def _fail_crashed(
        self, child: PoolChild, run: Run, code: int | None, active: ActiveRun | None
    ) -> None:
        seconds = time.monotonic() - (active.started if active else child.started_at)
        died = ChildDied(
            f"The child process running job {run.id!r} died ({describe_exit(code)}); "
            "a new child replaced it."
        )
        error = error_record(run, died, "crash", child.id)
        error["traceback"] = ""
        verdict = report_failure(self.state.queues[run.queue], run, error, None, seconds)
        if verdict != "stale":
            self.state.count(failed=verdict != "retry")
        finished(run, child.id, "failed" if verdict == "rerun" else verdict, seconds, error)
