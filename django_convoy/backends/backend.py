"""``ConvoyBackend``: Django's Tasks framework, run by convoy's workers.

.. code-block:: python

    TASKS = {
        "default": {
            "BACKEND": "django_convoy.backends.ConvoyBackend",
            "QUEUES": ["default", "monsterTrucks"],  # each one a CONVOY["QUEUES"] entry
            "OPTIONS": {"RESULT_TTL": 24 * 3600},
        }
    }

Each run of a task is a convoy job on the CONVOY queue of the task's ``queue_name``, so that
``convoy_worker`` runs it with convoy's guarantees (leases, the jam guard, fenced writes) next to
``@convoy_task`` jobs. A run's job id is new for every enqueue, as users of django.tasks expect,
unless the task says how to derive it from the arguments (``@task(job_id=...)``, or the
``UNIQUE_BY_ARGS`` option): then enqueueing while a run of that id is queued or running returns
that run's result instead of adding another. Results live next to the jobs (``results.py``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from functools import cached_property, partial
from typing import Any

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string

from ..conf import get_config
from ..decorators import register_runner
from ..exceptions import InvalidJob, JobNotFound, UnknownQueue
from ..ids import derive_id, normalise_id
from ..queue import ConvoyQueue, get_queue
from ..store import Run, encode_body
from ..validation import IF_PROCESSING, MAX_DELAY_SECONDS, encode_payload, task_policy
from . import aio
from .framework import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskContext,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from .options import Options, option_problems
from .results import (
    RESULT_ID_LENGTH,
    ConvoyTaskResult,
    TaskRun,
    add_run,
    define,
    epoch_ms,
    finish_run,
    read_result,
    ready_result,
    start_run,
    started_result,
    stored_result,
)

__all__ = ["ConvoyBackend", "ConvoyBackendTask", "ConvoyTaskResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvoyBackendTask(Task):
    """A Task with convoy's unique job ids, e.g. ``@task(job_id=lambda n: f"truck-{n}")``.

    Django 6.1 and the django-tasks backport pass the ``@task`` keyword arguments they do not
    know to the backend's ``task_class``, this one. With a ``job_id``, enqueueing while a run of
    that id is queued or running returns that run's result (``added`` False) instead of adding
    a run; ``if_processing="rerun"`` then queues one more run for when the running one ends.
    ``max_attempts``, ``timeout`` and ``retry_on`` override the queue's settings for this
    task's runs, as ``@convoy_task``'s do (docs/policies.rst).
    """

    job_id: Callable[..., Any] | None = None
    if_processing: str = "ignore"
    max_attempts: int | None = None
    timeout: float | None = None
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None

    @property
    def policy_json(self) -> str:
        """The policy each run of this task carries in its body ("" if none)."""
        policy = task_policy(
            self.module_path, self.max_attempts, self.timeout, None, self.retry_on, None
        )
        return json.dumps(policy, separators=(",", ":")) if policy else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # A job_id is usually a lambda, which pickle cannot carry: like Django's own Task,
        # pickle the module path and take the function (and job_id) from there on the way back.
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        del changes["func"], changes["job_id"]
        return (_unpickle_task, (self.module_path, changes))


def _unpickle_task(module_path: str, changes: dict[str, Any]) -> ConvoyBackendTask:
    defined = import_string(module_path)
    if not isinstance(defined, ConvoyBackendTask):
        raise ValueError(f"Expected {module_path!r} to point to a Task instance.")
    return replace(defined, **changes)


class ConvoyBackend(BaseTaskBackend):
    """Enqueue Django tasks on convoy queues; ``convoy_worker`` runs them and keeps results."""

    task_class = ConvoyBackendTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    # __init__ is BaseTaskBackend's: Django builds backends when tasks are defined, at import
    # time, so nothing here talks to Redis before the first enqueue.

    # -- configuration ----------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[Error]:
        """Report bad OPTIONS, and Django queues that map to no CONVOY queue."""
        errors = [
            Error(msg, hint=hint or None, id=id_) for id_, msg, hint in self._option_problems()
        ]
        convoy = getattr(settings, "CONVOY", None)
        configured = convoy.get("QUEUES") if isinstance(convoy, dict) else None
        if not isinstance(configured, dict):
            return errors  # convoy's own checks report a missing or broken CONVOY
        queue_map = self.options.get("QUEUE_MAP")
        queue_map = queue_map if isinstance(queue_map, dict) else {}
        names = ", ".join(sorted(map(str, configured))) or "none"
        for queue_name in sorted(self.queues):
            target = queue_map.get(queue_name, queue_name)
            if target not in configured:
                via = f" maps to CONVOY queue {target!r}, which" if target != queue_name else ""
                errors.append(
                    Error(
                        f"TASKS[{self.alias!r}] queue {queue_name!r}{via} is not in "
                        f"CONVOY['QUEUES'] (configured: {names}).",
                        hint="Add it to CONVOY['QUEUES'], or map it to a configured queue "
                        "with OPTIONS['QUEUE_MAP'].",
                        id="convoy.E103",
                    )
                )
        if self.queues:
            errors += [
                Error(
                    f"TASKS[{self.alias!r}]['OPTIONS']['QUEUE_MAP'] maps queue {queue_name!r}, "
                    f"which is not in the backend's QUEUES ({', '.join(sorted(self.queues))}).",
                    id="convoy.E104",
                )
                for queue_name in queue_map
                if queue_name not in self.queues
            ]
        return errors

    def _option_problems(self) -> list[tuple[str, str, str]]:
        """Every problem of OPTIONS, as (check id, message, hint)."""
        return option_problems(self.alias, self.options)

    @cached_property
    def _options(self) -> Options:
        problems = self._option_problems()
        if problems:
            raise ImproperlyConfigured(" ".join(msg for _, msg, _ in problems))
        return Options.from_raw(self.options)

    def _queue(self, queue_name: str) -> ConvoyQueue:
        target = self._options.queue_map.get(queue_name, queue_name)
        try:
            return get_queue(target)
        except UnknownQueue:
            raise InvalidTask(
                f"Queue '{queue_name}' is not valid for backend: CONVOY['QUEUES'] has no queue "
                f"{target!r} (configured: {', '.join(sorted(get_config().queues))})."
            ) from None

    def _result_queues(self) -> list[ConvoyQueue]:
        """The CONVOY queues this backend's results can be on (any, when QUEUES is empty)."""
        names = {self._options.queue_map.get(name, name) for name in self.queues}
        configured = get_config().queues
        return [get_queue(name) for name in sorted(names or configured) if name in configured]

    def _keep_ms(self, queue: ConvoyQueue) -> int:
        """How long a result outlives its last write while its run is not over."""
        return int((queue.config.failed_ttl + self._options.result_ttl) * 1000)

    # -- the API ----------------------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        """Apply Django's rules, then convoy's; remember a valid task so workers can run it."""
        super().validate_task(task)
        if isinstance(task, ConvoyBackendTask):
            if task.if_processing not in IF_PROCESSING:
                raise InvalidTask(
                    f"if_processing must be one of {IF_PROCESSING}, not {task.if_processing!r}."
                )
            if task.job_id is not None and not callable(task.job_id):
                raise InvalidTask(
                    "job_id must be a function that returns the job id from the task's "
                    f"arguments, not {task.job_id!r}."
                )
            try:
                task.policy_json  # noqa: B018 - validates max_attempts, timeout, retry_on
            except InvalidJob as exc:
                raise InvalidTask(str(exc)) from None
        if define(task):
            register_runner(task.module_path, _attempt)

    def enqueue(self, task: Task, args: Iterable[Any], kwargs: dict[str, Any]) -> ConvoyTaskResult:
        """Queue a run of ``task``; inside a transaction, once it commits (ENQUEUE_ON_COMMIT,
        the default)."""
        queue, run, job_id, body = self._prepare(task, args, kwargs)
        add = partial(self._add, task, run, queue, job_id, body)
        if not self.waits_for_commit():
            return add()
        pending = ready_result(task, run, None, added=None)
        transaction.on_commit(lambda: _fill(pending, add()), using=self._options.database)
        return pending

    def waits_for_commit(self) -> bool:
        """Whether an enqueue now waits for a commit: inside a transaction (a worker must not
        start the run before its rows are visible); outside one there is nothing to wait for."""
        database = self._options.database
        return self._options.enqueue_on_commit and connections[database].in_atomic_block

    def _prepare(
        self, task: Task, args: Iterable[Any], kwargs: dict[str, Any]
    ) -> tuple[ConvoyQueue, TaskRun, str, str]:
        """The queue, run, job id and body of an enqueue; everything that can be wrong with
        the run is found here, in the caller's code."""
        self.validate_task(task)
        queue = self._queue(task.queue_name)
        run = self._new_run(task, args, kwargs)
        if task.run_after and epoch_ms(task.run_after) > (time.time() + MAX_DELAY_SECONDS) * 1000:
            raise InvalidTask(
                f"run_after must be at most ten years ({MAX_DELAY_SECONDS} s) ahead, not "
                f"{task.run_after.isoformat()}."
            )
        job_id = self._job_id(task, args, kwargs, run)
        payload = encode_payload(run.payload(), queue.config.max_payload_bytes, queue.name)
        return (
            queue,
            run,
            job_id,
            encode_body(task.module_path, payload, getattr(task, "policy_json", "")),
        )

    async def aenqueue(self, task: Task, args: Iterable[Any], kwargs: Any) -> ConvoyTaskResult:
        """``enqueue`` with redis-py's asyncio client: no thread (``aio.py``)."""
        return await aio.enqueue(self, task, args, kwargs)

    async def aget_result(self, result_id: str) -> ConvoyTaskResult:
        """``get_result`` with redis-py's asyncio client: no thread (``aio.py``)."""
        return await aio.get_result(self, result_id)

    def _new_run(self, task: Task, args: Iterable[Any], kwargs: dict[str, Any]) -> TaskRun:
        return TaskRun(
            result_id=get_random_string(RESULT_ID_LENGTH),
            backend=self.alias,
            args=normalize_json(list(args)),
            kwargs=normalize_json(dict(kwargs)),
            options={
                "priority": task.priority,
                "queue_name": task.queue_name,
                "backend": task.backend,
                "run_after": task.run_after.isoformat() if task.run_after else None,
            },
        )

    def scheduled_run(
        self, task: Task, args: Iterable[Any], kwargs: dict[str, Any]
    ) -> tuple[ConvoyQueue, str, str, int]:
        """What a schedule's tick of ``task`` adds (``schedules/``): the queue, the body of a
        fresh run, the key of its result (the tick script creates it), and how long it is kept
        while the run waits."""
        self.validate_task(task)
        queue = self._queue(task.queue_name)
        run = self._new_run(task, args, kwargs)
        payload = encode_payload(run.payload(), queue.config.max_payload_bytes, queue.name)
        body = encode_body(task.module_path, payload, getattr(task, "policy_json", ""))
        return queue, body, queue.store.result_key(run.result_id), self._keep_ms(queue)

    def _job_id(self, task: Task, args: Any, kwargs: dict[str, Any], run: TaskRun) -> str:
        job_id = getattr(task, "job_id", None)
        if job_id is not None:
            return normalise_id(job_id(*args, **kwargs))
        if self._options.unique_by_args:
            return derive_id(task.module_path, task.func, tuple(run.args), run.kwargs)
        return run.result_id

    def add_args(self, task: Task, queue: ConvoyQueue, job_id: str, body: str) -> list[Any]:
        """The ARGV of ``task_add.lua`` for a run of ``task``."""
        due_ms = epoch_ms(task.run_after) if task.run_after else 0
        if_processing = getattr(task, "if_processing", "ignore")
        keep_ms = self._keep_ms(queue)
        return [job_id, body, if_processing, due_ms, task.priority, keep_ms, queue.store.flow_spec]

    def _add(
        self, task: Task, run: TaskRun, queue: ConvoyQueue, job_id: str, body: str
    ) -> ConvoyTaskResult:
        added = add_run(queue, run.result_id, self.add_args(task, queue, job_id, body))
        if added.outcome == "exists":
            if not added.result_id:
                raise InvalidJob(
                    f"Job id {job_id!r} of queue {queue.name!r} is held by a job that was not "
                    "enqueued through Django's Tasks framework; nothing was enqueued."
                )
            reply = read_result([queue], added.result_id)
            if reply is None:
                raise TaskResultDoesNotExist(added.result_id)
            return stored_result(reply, added.result_id, added=False)
        result = ready_result(task, run, added.now_ms, added=True)
        task_enqueued.send_robust(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> ConvoyTaskResult:
        """Read a run's result from Redis; raise TaskResultDoesNotExist if there is none."""
        if not isinstance(result_id, str) or not result_id:
            raise TaskResultDoesNotExist(result_id)
        reply = read_result(self._result_queues(), result_id)
        if reply is None:
            raise TaskResultDoesNotExist(result_id)
        return stored_result(reply, result_id)

    # -- on the worker ----------------------------------------------------------------------

    def run_attempt(self, run: TaskRun, job: Run, worker: str) -> None:
        """Run one attempt of ``run`` on this worker, recording it in the run's result.

        The outcome is written before ``task_finished`` is sent, and Django logs a receiver
        that raises: no receiver can change the outcome. An exception from the task is raised
        again, so that the worker retries or fails the job as it does any job.
        """
        queue = get_queue(job.queue)
        keep_ms = self._keep_ms(queue)
        reply = start_run(queue, job, run.result_id, worker, keep_ms)
        if reply is None:
            raise JobNotFound(
                f"Job {job.id!r} of queue {queue.name!r} was taken from this run before it "
                "started; it did not run."
            )
        result = started_result(reply, run.result_id)
        task = result.task
        task_started.send_robust(type(self), task_result=result)
        try:
            if task.takes_context:
                returned = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
            else:
                returned = task.call(*result.args, **result.kwargs)
            value = json.dumps(normalize_json(returned))
        except BaseException as exc:  # noqa: B036 - recorded, then raised again for the worker
            # Final by the rule the worker applies to the exception raised again below.
            final = queue.is_final(job, exc)
            cls = type(exc)
            error = {
                "exception_class_path": f"{cls.__module__}.{cls.__qualname__}",
                "traceback": "".join(traceback.format_exception(exc)),
            }
            status = TaskResultStatus.FAILED if final else TaskResultStatus.READY
            if finish_run(queue, job, result, status, json.dumps(error), keep_ms) and final:
                task_finished.send_robust(type(self), task_result=result)  # exc_info is set
            raise
        ttl_ms = int(self._options.result_ttl * 1000)
        if finish_run(queue, job, result, TaskResultStatus.SUCCESSFUL, value, ttl_ms):
            task_finished.send_robust(type(self), task_result=result)


def _attempt(job: Run, payload: Any, worker: str) -> Callable[[], None]:
    """The runner of every Django task on convoy's workers (see ``execution.resolve``)."""
    run = TaskRun.from_payload(job.id, payload)
    backend = task_backends[run.backend]
    if not isinstance(backend, ConvoyBackend):
        raise InvalidTask(
            f"Job {job.id!r} was enqueued through task backend {run.backend!r}, which is a "
            f"{type(backend).__name__} in this process, not a ConvoyBackend."
        )
    return partial(backend.run_attempt, run, job, worker)


def _fill(pending: ConvoyTaskResult, result: ConvoyTaskResult) -> None:
    """Give a result returned before the commit what the enqueue at the commit found."""
    for f in fields(result):
        object.__setattr__(pending, f.name, getattr(result, f.name))
