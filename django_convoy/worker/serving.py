"""One worker as the life of a process: signals, waiting for Redis at start, and the run.

``convoy_worker`` calls ``serve()`` (and so does each child of ``--processes``). The signal
handlers only set flags; the worker's threads act on them outside the handler. The first
SIGTERM or SIGINT stops claiming and lets running jobs finish within the grace period; a second
hands them back at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import RedisUnavailable
from ..schedules.thread import start_scheduler
from .backoff import Backoff
from .worker import Worker

SCHEDULER_JOIN_SECONDS = 5.0  # a tick call in flight when the worker stops


def serve(
    queues: list[str],
    options: dict[str, Any],
    *,
    on_ready: Callable[[], None] | None = None,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Run a worker of ``queues`` with ``options`` (``Worker``'s keyword arguments, and
    ``scheduler``: run the schedules beside it) until a signal stops it. ``on_ready`` is called
    once the worker exists (Redis answered). Raise ``WorkerCrashed`` if it died, a
    ``ConvoyError`` if it could not be made."""
    options = dict(options)
    scheduler = options.pop("scheduler", False)
    signals_seen: list[int] = []
    started: list[Worker] = []
    stopped = threading.Event()  # a signal before the worker exists: do not start it

    def on_signal(signum: int, frame: Any) -> None:
        signals_seen.append(signum)
        stopped.set()
        if started and len(signals_seen) == 1:
            started[0].request_stop()
        elif started:
            started[0].request_abort()

    for signum in signals:
        signal.signal(signum, on_signal)
    worker = _create_worker(queues, options, stopped)
    if worker is None:
        return
    started.append(worker)
    if on_ready is not None:
        on_ready()
    if signals_seen:  # a signal between the worker's making and now
        return
    # The scheduler thread stops at the first signal (or when the worker ends).
    scheduling = start_scheduler(stopped) if scheduler else None
    try:
        worker.run()
    finally:
        stopped.set()
        if scheduling is not None:
            scheduling.join(SCHEDULER_JOIN_SECONDS)


def _create_worker(
    queues: list[str], options: dict[str, Any], stopped: threading.Event
) -> Worker | None:
    """The worker, once Redis answers: a Redis Cluster client must reach a node to exist, and
    a worker started before its Redis is up should wait for it, not exit."""
    backoff = Backoff("starting the worker")
    while not stopped.is_set():
        try:
            worker = Worker(queues, **options)
        except RedisUnavailable as exc:
            backoff.wait(stopped, exc)
        else:
            backoff.reset()
            return worker
    return None
