"""Signals sent as jobs go through convoy, for ``@convoy_task`` and plain jobs alike.

Each is sent with ``sender=ConvoyQueue`` (the class, as Django's Tasks framework sends its
backend's class) and keyword arguments naming the queue and the job:

``job_added``
    after an add: ``queue``, ``job_id``, ``added`` (this call queued it), ``state`` (where the
    id is now), ``rerun`` (a rerun is pending). Sent per job, in the producer's process.
``job_started``
    before a run's code: ``queue``, ``job_id``, ``attempt``, ``worker``. In the process that runs
    the job (a child, with ``--pool processes``).
``job_finished``
    once Redis has a run's outcome: ``queue``, ``job_id``, ``attempt``, ``worker``, ``outcome``
    (``"done"``, ``"retry"``, ``"failed"``, or ``"stale"``: refused, the run had lost its job),
    ``duration`` (seconds the code ran) and ``error`` (the stored error record, or None). A run
    past ``JOB_TIMEOUT`` is finished by the worker's keeper, with its error.
``job_recovered``
    for each run the jam guard recovered: ``queue``, ``job_id``, ``action`` (``"requeued"``,
    ``"failed"``, ``"rerun"``, ``"dropped"``), ``worker``, ``attempts``, ``jams``.

Receivers run where the event happens, synchronously. One that raises is logged (Django's
``django.dispatch`` logger, ERROR, with its traceback) and changes nothing: the job's state is
in Redis before any signal is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

if TYPE_CHECKING:
    from .store import AddResult

job_added = Signal()
job_started = Signal()
job_finished = Signal()
job_recovered = Signal()


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; what a receiver raises is logged (by Django's
    ``send_robust``, on the ``django.dispatch`` logger) and goes no further."""
    if signal.receivers:  # the usual case, no receiver, costs this check alone
        signal.send_robust(sender, **kwargs)


def announce_added(sender: Any, queue: str, results: Iterable[AddResult]) -> None:
    """Send ``job_added`` for each result of an add (accepted or not)."""
    if not job_added.receivers:
        return
    for result in results:
        send(
            job_added,
            sender,
            queue=queue,
            job_id=result.id,
            added=result.added,
            state=result.state,
            rerun=result.rerun,
        )
