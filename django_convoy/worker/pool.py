"""``--pool processes``: child processes that run jobs, so a hung or crashing job costs a child.

Each executor thread of the worker drives one child over a pipe, one job at a time. Children are
spawned (not forked: the worker has threads and open connections) and set up Django themselves,
so they inherit no database or Redis connection. A child that dies mid-job is replaced; the
worker kills a child whose job passed JOB_TIMEOUT.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from ..exceptions import ConvoyError
from ..store import Run

Result = tuple[dict[str, Any] | None, bool, float]
ORPHAN_CHECK_SECONDS = 0.2


class ChildDied(ConvoyError):
    """The child process running a job exited before reporting how the job ended."""


class ChildProcess:
    """One child process; ``run()`` blocks until the job ends or the child dies."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self._context = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        self.process = self._context.Process(
            target=_child_main,
            args=(child_end, self.worker_id),
            daemon=True,
            name="convoy-child",
        )
        self.process.start()
        child_end.close()
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
                f"The child process running job {job.id!r} died ({_describe_exit(code)}); "
                "a new child replaced it."
            ) from None

    def _replace(self) -> int | None:
        self.process.join(timeout=5)
        code = self.process.exitcode
        self.connection.close()
        self._start()
        return code

    def kill(self) -> None:
        """Kill the child at once (its job timed out, or the worker is leaving)."""
        if self.process.is_alive():
            self.process.kill()

    def stop(self) -> None:
        """Ask an idle child to exit; kill it if it does not."""
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        self.kill()
        self.process.join(timeout=2)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _exit_when_orphaned(parent: int) -> None:
    """Die with the worker: once a SIGKILLed worker's jobs are jammed and handed to another
    worker, its children must not go on running them."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _child_main(connection: Connection, worker_id: str) -> None:
    # The worker decides when children stop: a Ctrl-C or SIGTERM meant for the worker must not
    # kill a job mid-way (the worker hands it back, or kills the child itself).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    import django

    django.setup()
    from .execution import execute

    connection.send("ready")
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        connection.send(execute(Run(*message), worker_id))
