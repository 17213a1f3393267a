"""``convoy_worker --processes N``: N worker processes under one command, supervised.

One Python process runs its jobs' Python on one core; a worker per core uses them all. Each
child is a full worker (its own claims, batched acks, threads, hand-off, heartbeat and pid in
the admin), forked from the command before it talks to Redis, so a child starts in
milliseconds and shares nothing with its siblings but the code.

The command forwards its signals: the first SIGTERM or SIGINT stops every child with its grace,
a second makes them hand their runs back at once. Children leave the terminal's process group,
so a Ctrl-C reaches them through the command only, once. A child that dies is replaced (its
runs are recovered by the usual lease rules); one that cannot start (bad settings) stops the
command with its error instead of a restart loop. ``--burst`` ends when every child ended;
``--max-jobs N`` is shared out among the children, N in all.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .. import connection
from ..exceptions import ConvoyError
from .backoff import Backoff

logger = logging.getLogger("django_convoy.worker")

EXIT_CRASHED, EXIT_NOT_STARTED = 1, 3
ORPHAN_CHECK_SECONDS = 0.5
REAP_SECONDS = 10.0  # past a child's grace, how long it may take to leave


class ProcessesFailed(ConvoyError):
    """A worker process of ``--processes`` could not start, or died of an error."""


@dataclass
class Child:
    """One worker process and what the supervisor knows of it."""

    index: int
    max_jobs: int | None
    process: Any = None
    channel: Connection | None = None  # the child says "ready", or why it could not start
    ready: bool = False
    error: str = ""
    started_at: float = field(default_factory=time.monotonic)


def shares(total: int | None, processes: int) -> list[int | None]:
    """``--max-jobs`` shared out: N in all, as evenly as can be (None: no limit)."""
    if total is None:
        return [None] * processes
    return [total // processes + (i < total % processes) for i in range(processes)]


class Supervisor:
    """Start, watch, replace and stop the worker processes of one command."""

    def __init__(self, processes: int, queues: list[str], options: dict[str, Any]):
        self.queues = queues
        self.options = dict(options)
        self.burst = bool(options.get("burst"))
        self.children = [
            Child(i, share)
            for i, share in enumerate(shares(options.get("max_jobs"), processes))
            if share != 0
        ]
        self._context = multiprocessing.get_context("fork")
        self._signals = 0  # written by the signal handler only
        self._forwarded = 0
        self._restarts = Backoff("restarting a worker process")
        self.failures: list[str] = []

    def on_signal(self, signum: int, frame: Any) -> None:
        """The command's handler: only counts; ``run()`` forwards."""
        self._signals += 1

    def run(self) -> None:
        """Supervise until every child has ended; raise ``ProcessesFailed`` if one failed."""
        connection.reset()  # the parent never talks to Redis: children must not share a socket
        try:
            for child in self.children:
                self._start(child)
            while any(child.process is not None for child in self.children):
                self._forward_signals()
                self._watch()
        finally:
            self._reap()
        if self.failures:
            raise ProcessesFailed("; ".join(self.failures))

    def _watch(self) -> None:
        """Wait a moment for a child to speak or end, and act on it."""
        sentinels = {child.process.sentinel: child for child in self.children if child.process}
        channels = {child.channel: child for child in self.children if child.channel}
        for ready in wait([*sentinels, *channels], timeout=0.2):
            # One wait can bring a child's last word and its end: act once on each.
            if ready in channels and channels[ready].channel is ready:
                self._hear(channels[ready])
            elif ready in sentinels and sentinels[ready].process is not None:
                self._ended(sentinels[ready])

    def _start(self, child: Child) -> None:
        receive, send = self._context.Pipe(duplex=False)
        options = {**self.options, "max_jobs": child.max_jobs}
        options["scheduler"] = bool(self.options.get("scheduler")) and child.index == 0
        child.process = self._context.Process(
            target=_child_main,
            args=(self.queues, options, send, os.getpid()),
            name=f"convoy-worker-{child.index}",
        )
        child.process.start()
        send.close()
        child.channel, child.ready, child.error = receive, False, ""
        child.started_at = time.monotonic()
        logger.info("worker process %d started (pid %d)", child.index, child.process.pid)

    def _hear(self, child: Child) -> None:
        try:
            message = child.channel.recv()
        except (EOFError, OSError):
            child.channel = None  # it exited: its sentinel tells the rest
            return
        if message == "ready":
            child.ready = True
            self._restarts.reset()
        else:
            child.error = str(message)

    def _ended(self, child: Child) -> None:
        process = child.process
        process.join()
        code = process.exitcode
        if child.channel is not None:
            while child.channel is not None and child.channel.poll():  # a last word
                self._hear(child)
            if child.channel is not None:
                child.channel.close()
        child.process, child.channel = None, None
        stopping = self._signals > 0
        described = _describe(code)
        log = logger.info if code == 0 else logger.error
        log("worker process %d (pid %d) %s", child.index, process.pid, described)
        if code == 0 and (stopping or self.burst or child.max_jobs is not None):
            return  # its work is done, or it was told to stop
        if code == EXIT_NOT_STARTED or (not child.ready and child.error):
            self.failures.append(
                f"worker process {child.index} could not start: {child.error or described}"
            )
            self._stop_all()
            return
        if stopping:
            if code != 0:
                self.failures.append(f"worker process {child.index} {described} while stopping")
            return
        self.failures.append(
            f"worker process {child.index} {described}"
            + (f": {child.error}" if child.error else "")
        )
        why = ProcessesFailed(f"worker process {child.index} {described}")
        time.sleep(self._restarts.next(why))
        if self._signals == 0:
            self._start(child)

    def _forward_signals(self) -> None:
        """Send each signal the command got to every child, as SIGTERM: stop, then abort."""
        while self._forwarded < min(self._signals, 2):
            self._forwarded += 1
            for child in self.children:
                if child.process is not None and child.process.pid:
                    _signal(child.process.pid, signal.SIGTERM)

    def _reap(self) -> None:
        """However ``run()`` ends, no child outlives the command: stop those still running
        (with their grace), then kill what is left."""
        alive = [child.process for child in self.children if child.process is not None]
        if not alive:
            return
        self._stop_all()
        deadline = time.monotonic() + float(self.options.get("grace", 30.0)) + REAP_SECONDS
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(REAP_SECONDS)

    def _stop_all(self) -> None:
        self._signals = max(self._signals, 1)
        self._forward_signals()


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _describe(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _child_main(
    queues: list[str], options: dict[str, Any], channel: Connection, parent: int
) -> None:
    """A worker process: out of the terminal's process group (its signals come through the
    command), stopping if the command dies, telling the command when it is ready or why not."""
    from .serving import serve
    from .worker import WorkerCrashed

    os.setpgid(0, 0)
    connection.reset()
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()

    def ready() -> None:
        channel.send("ready")

    try:
        serve(queues, options, on_ready=ready, signals=(signal.SIGTERM,))
    except WorkerCrashed as exc:
        _exit(channel, str(exc), EXIT_CRASHED)
    except Exception as exc:  # could not make the worker: settings, a queue, ...
        _exit(channel, f"{type(exc).__name__}: {exc}", EXIT_NOT_STARTED)
    channel.close()


def _exit(channel: Connection, message: str, code: int) -> None:
    """Tell the command why, and exit at once (the worker has shut down already)."""
    try:
        channel.send(message)
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stop_when_orphaned(parent: int) -> None:
    """A child whose command was SIGKILLed stops (with its grace): nothing supervises it."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
