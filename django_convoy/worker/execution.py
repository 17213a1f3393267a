"""Running one claimed job: find its code, call it, and describe how it ended.

Shared by the worker's threads and its child processes (``--pool processes``), so that a job
behaves the same in both.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

from ..context import JobContext, _current
from ..decorators import runner_of
from ..discovery import import_task_module
from ..exceptions import JobExpired, RedisUnavailable, UnknownTask
from ..observability import tracing
from ..queue import ConvoyQueue, get_queue
from ..signals import job_finished, job_started, send
from ..store import Policy, Run, decode_body, policy_of

logger = logging.getLogger(__name__)


def resolve(job: Run, worker: str) -> Callable[[], Any]:
    """Find what runs ``job`` among registered tasks; never import a name read from Redis."""
    try:
        task_name, payload = decode_body(job.body)
    except ValueError as exc:
        raise UnknownTask(
            f"Job {job.id!r} has a corrupt body ({exc}): {job.body[:200]!r}"
        ) from None
    found, runner = runner_of(job, task_name)
    why = ""
    if found is None and runner is None and task_name is not None:
        why = import_task_module(task_name)  # defined outside the apps' tasks modules?
        found, runner = runner_of(job, task_name)
    if runner is not None:
        return runner(job, payload, worker)
    if task_name is None:
        if found is None:
            raise UnknownTask(
                f"Job {job.id!r} was added with add_job and queue {job.queue!r} has no "
                "processor; register one with @convoy_processor."
            )
        return lambda: found(job.id, payload)
    if found is None:
        raise UnknownTask(
            f"Job {job.id!r} names task {task_name!r}, which is not registered: no installed "
            "app defines it with @convoy_task or a Django @task on a ConvoyBackend"
            f"{'; ' + why if why else '.'}"
        )
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("args"), list)
        or not isinstance(payload.get("kwargs"), dict)
    ):
        raise UnknownTask(
            f"Job {job.id!r}: a task payload needs 'args' (a list) and "
            f"'kwargs' (an object), not {payload!r:.200}."
        )
    return lambda: found.func(*payload["args"], **payload["kwargs"])


def keep_result(job: Run, value: Any) -> None:
    """Keep what a run returned (``ConvoyQueue.keep_result``); a failure to keep it is logged,
    and does not fail a run whose work is done."""
    try:
        if not get_queue(job.queue).keep_result(job, value):
            logger.info("%s %s: result not kept: the run lost its job", job.queue, job.id)
    except RedisUnavailable as exc:
        logger.warning("%s %s: result not kept: %s", job.queue, job.id, exc)


def log_fields(job: Run, seconds: float, outcome: str) -> dict[str, Any]:
    """The ``extra`` fields of a log line about a run, for JSON log formatters."""
    return {
        "queue": job.queue,
        "job_id": job.id,
        "attempt": job.attempt,
        "duration_ms": round(seconds * 1000, 3),
        "outcome": outcome,
    }


def finished(job: Run, worker: str, outcome: str, seconds: float, error: Any = None) -> None:
    """Send ``job_finished`` for a run whose outcome Redis has (``signals``)."""
    send(
        job_finished,
        ConvoyQueue,
        queue=job.queue,
        job_id=job.id,
        attempt=job.attempt,
        worker=worker,
        outcome=outcome,
        duration=seconds,
        error=error,
    )


def refuse_expired(queue: ConvoyQueue, job: Run, policy: Policy) -> None:
    """Raise JobExpired if ``job`` was not started before its task's ``expires``: it then
    fails for good with reason ``expired``, and its code never runs. When Redis cannot say
    (it is away), the job runs: failing it for good over an outage would lose it."""
    try:
        expired = queue.expired(job, policy)
    except RedisUnavailable as exc:
        logger.warning("%s %s: expiry not checked: %s", job.queue, job.id, exc)
        return
    if expired:
        raise JobExpired(
            f"Job {job.id!r} of queue {job.queue!r} expired before it started (its task's "
            "expires); it was not run."
        )


def error_record(job: Run, exc: BaseException, reason: str, worker: str) -> dict[str, Any]:
    """Describe a failure as convoy stores it (JSON): class path, message, traceback, reason."""
    cls = type(exc)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "at": int(time.time() * 1000),
        "attempt": job.attempt,
        "id": job.id,
        "reason": reason,
        "worker": worker,
    }


def execute(
    job: Run, worker: str, *, close_connections: bool = True, lost: threading.Event | None = None
) -> tuple[dict[str, Any] | None, bool, float]:
    """Run ``job`` here; return (error or None, whether the failure is final, seconds).

    Whether a failure is final is ``retries.failure_is_final``'s to say, by the task's policy
    (``store.Policy``, carried in the body) or the queue's settings. A job whose task's
    ``expires`` passed before it started fails as expired, without running. Database connections
    are handled around the job as Django handles them around a request, unless
    ``close_connections`` is False: ``testing.drain`` runs jobs on a test's own thread, whose
    connection may hold the test's transaction (Django's test client spares it the same way).
    ``lost`` is set by the worker once the run's outcome no longer counts (``cancelled``).
    """
    context = _current.set(JobContext(job.queue, job.id, job.attempt, job.token, lost))
    span = tracing.start_run(job.queue, job.id, job.attempt, _task_of(job), job.body)
    send(
        job_started, ConvoyQueue, queue=job.queue, job_id=job.id, attempt=job.attempt, worker=worker
    )
    started = time.perf_counter()
    error, final, raised = None, False, None
    queue = get_queue(job.queue)
    policy = policy_of(job.body)
    try:
        if policy.expires_in is not None or policy.expires_at_ms is not None:
            refuse_expired(queue, job, policy)
        if close_connections:
            close_old_connections()
        value = resolve(job, worker)()
        if value is not None:
            keep_result(job, value)
    except BaseException as exc:  # noqa: B036 - a job must never take its thread down
        final = queue.is_final(job, exc, policy)
        reason = "expired" if isinstance(exc, JobExpired) else "error"
        error, raised = error_record(job, exc, reason, worker), exc
    finally:
        seconds = time.perf_counter() - started
        if close_connections:
            close_old_connections()
        _current.reset(context)
        tracing.end_run(span, "done" if error is None else "failed" if final else "retry", raised)
    return error, final, seconds


def _task_of(job: Run) -> str | None:
    """The task a body names, for a span's name; read only when a span is made."""
    if not tracing.tracer():
        return None
    try:
        return decode_body(job.body)[0]
    except ValueError:
        return None
