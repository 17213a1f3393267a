"""Results of Django tasks: one Redis HASH per run, under its queue's hash tag.

A run of a Django task (``backend.py``) is a convoy job whose payload carries its result id.
``task_add.lua`` creates the result with the job; the worker marks it RUNNING when an attempt
starts (``task_start.lua``) and records the attempt's outcome (``task_finish.lua``). Both are
fenced like ack and fail: a worker whose lease was taken over writes nothing. Some endings never
reach the task's code (a jam guard puts the run back, a timeout or MAX_JAMS fails it), so reading
a result (``task_result.lua``) looks at the job too, and the job's state wins while the job is
this run's.

A result expires RESULT_TTL after a success, and FAILED_TTL + RESULT_TTL after a final failure
(the failed job is kept FAILED_TTL, then its id is released). While its run waits or runs it
outlives its last write by FAILED_TTL + RESULT_TTL; a run that waited even longer gets it back
from its job when it starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from ..discovery import import_task_module
from ..exceptions import UnknownTask
from ..queue import ConvoyQueue
from ..store import Run, decode_body, from_ms
from ..store.overview import find_result
from .framework import Task, TaskError, TaskResult, TaskResultStatus

# The id of one result (a run): Django's own backends use 32 random characters as well.
RESULT_ID_LENGTH = 32
FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)

_defined: dict[str, Task] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvoyTaskResult(TaskResult):
    """A ``TaskResult`` that also tells whether the enqueue that returned it added a run.

    ``added`` is False when the task's job id already stood for a live run: the result is that
    run's. It is None on results read back with ``get_result``, which no enqueue returned.
    """

    added: bool | None = field(default=None, compare=False)


def define(task: Task) -> bool:
    """Remember ``task`` under its module path; return whether it is the first one seen there.

    The first is the decorated, module-level task: ``using()`` copies come later. Workers and
    ``get_result`` find tasks here, and never import a name read from Redis.
    """
    return _defined.setdefault(task.module_path, task) is task


def defined_task(name: str) -> Task:
    """Return the task defined under ``name``; raise UnknownTask if none is."""
    found = _defined.get(name)
    if found is None:
        why = import_task_module(name)  # defined in another module of an installed app?
        found = _defined.get(name)
        if found is None:
            raise UnknownTask(
                f"No Django task {name!r} is defined in this process with a convoy backend; "
                f"define it in a module of an installed app, with @task on a convoy backend"
                f"{'; ' + why if why else '.'}"
            )
    return found


@dataclass(frozen=True)
class TaskRun:
    """What the job of one run carries: its result id and everything its TaskResult needs."""

    result_id: str
    backend: str  # the alias of the backend that enqueued it (TaskResult.backend)
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]  # the Task's priority, queue_name, backend and run_after (ISO 8601)

    def payload(self) -> dict[str, Any]:
        """Return the job's payload (its "args" and "kwargs" read like a @convoy_task's)."""
        return {
            "result": self.result_id,
            "backend": self.backend,
            "args": self.args,
            "kwargs": self.kwargs,
            "task": self.options,
        }

    @classmethod
    def from_payload(cls, job_id: str, payload: Any) -> TaskRun:
        """Read a run from a job's payload; raise UnknownTask if it is not one."""
        try:
            run = cls(
                payload["result"],
                payload["backend"],
                payload["args"],
                payload["kwargs"],
                payload["task"],
            )
            valid = (
                isinstance(run.result_id, str)
                and isinstance(run.backend, str)
                and isinstance(run.args, list)
                and isinstance(run.kwargs, dict)
                and isinstance(run.options, dict)
            )
        except (KeyError, TypeError):
            valid = False
        if not valid:
            raise UnknownTask(
                f"Job {job_id!r}: a Django task's payload needs 'result', 'backend', 'args', "
                f"'kwargs' and 'task', not {payload!r:.200}."
            )
        return run

    def task(self, name: str) -> Task:
        """Return the task this run runs: the defined one, with the options it was enqueued with."""
        run_after = self.options.get("run_after")
        return replace(
            defined_task(name),
            priority=self.options["priority"],
            queue_name=self.options["queue_name"],
            backend=self.options["backend"],
            run_after=datetime.fromisoformat(run_after) if run_after else None,
        )


@dataclass(frozen=True)
class Added:
    """What ``task_add.lua`` did: 'added', 'rerun' (pending until the live run ends) or 'exists'."""

    now_ms: int
    outcome: str
    result_id: str  # the run the job id stands for ('' if not a Django task's)


def add_run(queue: ConvoyQueue, result_id: str, args: list[Any]) -> Added:
    """Queue (or schedule) a run and create its READY result, unless the job id is live;
    ``args``: ``ConvoyBackend.add_args``."""
    return Added(*queue.store.call("task_add", args, [queue.store.result_key(result_id)]))


def start_run(
    queue: ConvoyQueue, job: Run, result_id: str, worker: str, keep_ms: int
) -> list[Any] | None:
    """Mark the result RUNNING for ``job``'s attempt; None if the run no longer holds the job."""
    args = [job.id, job.token, worker, keep_ms]
    return queue.store.call("task_start", args, [queue.store.result_key(result_id)]) or None


def finish_run(
    queue: ConvoyQueue,
    job: Run,
    result: ConvoyTaskResult,
    status: TaskResultStatus,
    value: str,
    ttl_ms: int,
) -> bool:
    """Record an attempt's outcome in Redis and in ``result``; False if a newer run holds the job.

    ``value`` is the JSON of the return value (SUCCESSFUL) or of the error (FAILED, or READY:
    failed and to be retried). A refused write changes nothing, here or in Redis.
    """
    args = [job.id, job.token, status, value, ttl_ms]
    now = queue.store.call("task_finish", args, [queue.store.result_key(result.id)])
    if not now:
        return False
    object.__setattr__(result, "status", status)
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", json.loads(value))
    else:
        result.errors.append(_task_error(value))
    if status in FINISHED:
        object.__setattr__(result, "finished_at", _when(now))
    return True


def read_result(queues: Iterable[ConvoyQueue], result_id: str) -> list[Any] | None:
    """Find a result in any of ``queues`` (one round trip); None if none of them has it."""
    return find_result([queue.store for queue in queues], result_id)


def stored_result(
    reply: list[Any], result_id: str, *, added: bool | None = None
) -> ConvoyTaskResult:
    """Build the TaskResult of a ``task_result.lua`` reply (state first, then the HASH)."""
    _, state, score, attempts, last_error, *pairs = reply
    fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
    return _build(fields, result_id, state, score, int(attempts), last_error, added)


def started_result(reply: list[Any], result_id: str) -> ConvoyTaskResult:
    """Build the RUNNING TaskResult of a ``task_start.lua`` reply."""
    _, attempt, *pairs = reply
    fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
    return _build(fields, result_id, "processing", "", int(attempt), "", None)


def ready_result(
    task: Task, run: TaskRun, now_ms: int | None, *, added: bool | None
) -> ConvoyTaskResult:
    """Build the result of a run that was just added: READY, enqueued at ``now_ms``."""
    return ConvoyTaskResult(
        task=task,
        id=run.result_id,
        status=TaskResultStatus.READY,
        enqueued_at=_when(now_ms),
        started_at=None,
        finished_at=None,
        last_attempted_at=None,
        args=run.args,
        kwargs=run.kwargs,
        backend=run.backend,
        errors=[],
        worker_ids=[],
        added=added,
    )


def _build(
    fields: dict[str, str],
    result_id: str,
    state: str,
    score: str,
    attempts: int,
    last_error: str,
    added: bool | None,
) -> ConvoyTaskResult:
    name, payload = decode_body(fields["body"])
    run = TaskRun.from_payload(fields.get("job", ""), payload)
    status = _status(fields, state, attempts)
    errors = {
        int(key.partition(":")[2]): value
        for key, value in fields.items()
        if key.startswith("error:")
    }
    if last_error:
        # A timeout or MAX_JAMS ended the attempt: the queue knows, the result may not yet.
        attempt = json.loads(last_error).get("attempt")
        if isinstance(attempt, int):
            errors.setdefault(attempt, last_error)
    finished = fields.get("finished") or (score if state == "failed" else "")
    result = ConvoyTaskResult(
        task=run.task(name),
        id=result_id,
        status=status,
        enqueued_at=_when(fields.get("enqueued")),
        started_at=_when(fields.get("started")),
        finished_at=_when(finished) if status in FINISHED else None,
        last_attempted_at=_when(fields.get("last_attempted")),
        args=run.args,
        kwargs=run.kwargs,
        backend=run.backend,
        errors=[_task_error(errors[n]) for n in sorted(errors)],
        worker_ids=[
            fields[key]
            for key in sorted(
                (k for k in fields if k.startswith("worker:")),
                key=lambda k: int(k.partition(":")[2]),
            )
        ],
        added=added,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", json.loads(fields["return"]))
    return result


def _status(fields: dict[str, str], state: str, attempts: int) -> TaskResultStatus:
    """Where the run is: the job's state while the job is this run's, else the last outcome."""
    recorded = TaskResultStatus(fields.get("status", TaskResultStatus.READY))
    if state in ("queued", "scheduled", "rerun"):
        return TaskResultStatus.READY
    if state in ("processing", "jammed"):
        # The attempt may have ended already, its ack or fail not yet through.
        ended = recorded != TaskResultStatus.RUNNING and fields.get("attempt") == str(attempts)
        return recorded if ended else TaskResultStatus.RUNNING
    if state == "failed":
        return TaskResultStatus.FAILED
    # The job let go of this run: it ended, or was deleted, purged or dropped before it could.
    return recorded if recorded in FINISHED else TaskResultStatus.FAILED


def _task_error(raw: str) -> TaskError:
    # The task's own errors carry Django's names; the queue's (timeouts, jams) carry convoy's.
    data = json.loads(raw)
    return TaskError(
        exception_class_path=data.get("exception_class_path") or data.get("type", ""),
        traceback=data.get("traceback", ""),
    )


def _when(ms: str | int | None) -> datetime | None:
    """A Redis-clock time as Django's own backends give times: aware only with USE_TZ."""
    moment = from_ms(ms)
    if moment is None or settings.USE_TZ:
        return moment
    return timezone.make_naive(moment, timezone.get_default_timezone())


def epoch_ms(moment: datetime) -> int:
    """A run_after as Redis-clock milliseconds (a naive one is in the default time zone)."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return int(moment.timestamp() * 1000)
