"""Child processes that run jobs, so a hung or crashing job costs a child, not the worker.

On ``--pool threads`` the ``Quarantine`` lends children to jobs on their last chance: an
executor thread drives one over a pipe, one job at a time, and the worker kills it if the job
passes JOB_TIMEOUT. (``--pool processes`` children are workers of their own: ``pool_child.py``.)
Children are spawned (``spawn``) and set Django up themselves, so they inherit no database or
Redis connection; only the first children of a ``--pool processes`` worker may be forked, when
nothing a fork could share is there yet. A child that dies mid-job is replaced.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from ..exceptions import ConvoyError
from ..store import Run

Result = tuple[dict[str, Any] | None, bool, float]
ORPHAN_CHECK_SECONDS = 0.2
WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class ChildDied(ConvoyError):
    """The child process running a job exited before reporting how the job ended."""


class ChildProcess:
    """One child process; ``run()`` blocks until the job ends or the child dies."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        # Held while a child starts: shutdown must not join a process that is half started,
        # nor see a replacement start after it retired the child.
        self._lock = threading.Lock()
        self.retired = False
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self.retired:
                raise ChildDied("The worker is stopping: no new child process is started.")
            parent_end, child_end = multiprocessing.get_context("spawn").Pipe()
            process = spawn(_child_main, (child_end, self.worker_id))
            child_end.close()
            self.process = process
            self.connection: Connection = parent_end
            self.ready = False

    def wait_ready(self) -> None:
        """Wait until the child has set Django up (seconds, once per child)."""
        if not self.ready:
            try:
                self.connection.recv()
            except (EOFError, OSError):
                self._replace()
                raise ChildDied("A new child process exited while setting Django up.") from None
            self.ready = True

    def run(self, job: Run) -> Result:
        """Run ``job`` in the child; raise ChildDied (after starting a replacement) if it dies."""
        try:
            self.connection.send((job.queue, job.id, job.body, job.attempt, job.token))
            return self.connection.recv()
        except (EOFError, OSError):
            code = self._replace()
            raise ChildDied(
                f"The child process running job {job.id!r} died ({describe_exit(code)}); "
                "a new child replaced it."
            ) from None

    def _replace(self) -> int | None:
        self.process.join(timeout=5)
        code = self.process.exitcode
        self.connection.close()
        try:
            self._start()
        except ChildDied:
            pass  # retired meanwhile: the worker is stopping
        return code

    def kill(self) -> None:
        """Kill the child at once (its job timed out, or the worker is leaving)."""
        with self._lock:
            if self.process.is_alive():
                self.process.kill()

    def retire(self, patience: float) -> None:
        """Give an idle child ``patience`` seconds to exit as asked, then kill it; it is not
        replaced after that (shutdown)."""
        with self._lock:
            self.retired = True
        self.process.join(patience)
        self.kill()
        self.process.join(1.0)

    def stop(self) -> None:
        """Ask an idle child to exit; kill it if it does not."""
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        self.kill()
        self.process.join(timeout=2)


class Quarantine:
    """The children that run jobs on their last chance for a worker on threads: up to ``size`` at
    once, each started when first needed and kept for the next such job."""

    def __init__(self, worker_id: str, size: int, started: list[ChildProcess], lock: Any):
        self.worker_id = worker_id
        self.size = size
        self._started = started  # the worker's list of its children (to stop at shutdown)
        self._started_lock = lock
        self._free: list[ChildProcess] = []
        self._count = 0
        self._cond = threading.Condition()

    def take(self) -> ChildProcess:
        """A child for one job: a free one, a new one, or the next one freed."""
        with self._cond:
            while not self._free and self._count >= self.size:
                self._cond.wait()
            if self._free:
                return self._free.pop()
            self._count += 1
        try:
            child = ChildProcess(self.worker_id)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._started_lock:
            self._started.append(child)
        return child

    def give_back(self, child: ChildProcess) -> None:
        """The job is over: the child (or the replacement of one that died) runs the next."""
        with self._cond:
            self._free.append(child)
            self._cond.notify()


def spawn(target: Any, args: tuple[Any, ...], *, fork: bool = False) -> Any:
    """Start a child process that runs ``target(*args)``, blind to the worker's signals until it
    says. Spawned: a fresh interpreter that sets Django up itself, which takes a second or more
    on a busy machine. With ``fork``, forked instead when that is safe (``forkable``): the child
    starts in milliseconds with Django set up."""
    method = "fork" if fork and forkable() else "spawn"
    process = multiprocessing.get_context(method).Process(
        target=target, args=args, daemon=True, name="convoy-child"
    )
    # The child must never get the worker's signals (a Ctrl-C reaches the whole process
    # group): it ignores them once it runs, and until then they wait, blocked, in the mask it
    # inherits from this thread. Starting multiprocessing's resource tracker unblocks them in
    # the thread that starts it, so it is started first: otherwise the worker's first child
    # alone was open to a Ctrl-C.
    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return process


def forkable() -> bool:
    """Whether a fork would share nothing with its child that could hurt either: this process
    runs one thread (no lock another thread holds is copied locked, never to be released) and
    has no database connection open (whose socket both would then use). Redis connections are
    safe: redis-py's pools notice the new pid and open their own."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return False
    from django.db import connections

    return all(c.connection is None for c in connections.all(initialized_only=True))


def describe_exit(code: int | None) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def exit_when_orphaned(parent: int) -> None:
    """Die with the worker: once a SIGKILLed worker's jobs are jammed and handed to another
    worker, its children must not go on running them."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _child_main(connection: Connection, worker_id: str) -> None:
    # The worker decides when children stop: a Ctrl-C or SIGTERM meant for the worker must not
    # kill a job mid-way (the worker hands it back, or kills the child itself). Ignored, the
    # signals that came while they were blocked (ChildProcess._start) are discarded.
    for signum in WORKER_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    threading.Thread(target=exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    import django

    django.setup()
    from .execution import execute

    # The worker closes its end when it is done with this child (it stopped, or gave up on
    # the job): that ends the child quietly, not with a BrokenPipe traceback.
    try:
        connection.send("ready")
        while (message := connection.recv()) is not None:
            connection.send(execute(Run(*message), worker_id))
    except (EOFError, OSError):
        return
