"""``@convoy_task`` and ``@convoy_processor``, and the registry the worker runs from.

The worker runs only what these decorators registered: a name read from Redis is looked up
here, never imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from django.db import transaction

from .exceptions import InvalidJob
from .ids import MAX_ID_BYTES, derive_id, normalise_id
from .limits import check_group
from .queue import get_queue
from .store import AddResult, Run, body_prefix
from .validation import (
    AddOptions,
    add_options,
    check_add_options,
    check_dedupe_options,
    encode_payload,
    task_policy,
)

# How a worker runs the job of an integration's task: given the run, its payload and the
# worker's id, return the call that executes it.
Runner = Callable[[Run, Any, str], Callable[[], Any]]

_tasks: dict[str, ConvoyTask] = {}
_processors: dict[str, Callable[[str, Any], Any]] = {}
_runners: dict[str, Runner] = {}


def registered_tasks() -> dict[str, ConvoyTask]:
    """Return the registered tasks by dotted name."""
    return dict(_tasks)


def registered_processors() -> dict[str, Callable[[str, Any], Any]]:
    """Return the functions that process plain ``add_job`` jobs, by queue name."""
    return dict(_processors)


def register_runner(name: str, runner: Runner) -> None:
    """Let workers run the jobs whose body names task ``name`` through ``runner``.

    For integrations whose tasks need more than a call, such as the Django Tasks backend,
    which records each attempt's result (``backends.py``).
    """
    _runners[name] = runner


def registered_runners() -> dict[str, Runner]:
    """Return the runners registered with ``register_runner``, by task name."""
    return dict(_runners)


def runner_of(job: Run, task_name: str | None) -> tuple[Any, Runner | None]:
    """What runs a job whose body names ``task_name``: (a task, a runner, or a processor of
    the job's queue), looked up without copying the registries (a worker asks once per job)."""
    if task_name is None:
        return _processors.get(job.queue), None
    runner = _runners.get(task_name)
    return (None, runner) if runner is not None else (_tasks.get(task_name), None)


@dataclass(frozen=True)
class ConvoyTask:
    """A function that runs on a convoy queue; call it to run it here, ``enqueue`` to queue it."""

    func: Callable[..., Any]
    name: str
    queue: str = "default"
    job_id: Callable[..., Any] | None = field(default=None, repr=False)
    if_processing: str = "ignore"
    priority: int = 0
    delay: float = 0
    if_queued: str = "keep"  # "replace": a waiting job's payload is replaced (a debounce)
    hold_for: float = 0  # seconds adds of an id are refused after its job ended (a throttle)
    # Flow control: each job's group key, from the call's arguments (a callable) or fixed.
    group: Callable[..., Any] | str | None = field(default=None, repr=False)
    # A schedule named after the task (schedules/): a cron expression, or every N seconds.
    cron: str | None = None
    every: int | None = None
    # The task's own policy (store.Policy) as its jobs carry it: "" when the queue's settings
    # apply in full. Built once, by convoy_task, from its max_attempts, timeout, backoff,
    # retry_on and expires.
    policy_json: str = field(default="", repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def using(
        self,
        *,
        if_processing: str | None = None,
        delay: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        if_queued: str | None = None,
        hold_for: float | None = None,
    ) -> ConvoyTask:
        """Return a copy with per-call options, e.g. ``task.using(delay=5).enqueue(7)``."""
        changes = {
            "if_processing": if_processing,
            "delay": delay,
            "priority": priority,
            "queue": queue,
            "if_queued": if_queued,
            "hold_for": hold_for,
        }
        copy = replace(self, **{key: value for key, value in changes.items() if value is not None})
        check_add_options(copy.if_processing, copy.delay, copy.priority)
        check_dedupe_options(copy.if_queued, copy.hold_for)
        return copy

    def id_for(self, *args: Any, **kwargs: Any) -> str:
        """The job id that ``enqueue(*args, **kwargs)`` uses: its ``job_id``'s, else one
        derived from the arguments bound to the function's signature (``ids.derive_id``)."""
        if self.job_id is not None:
            return normalise_id(self.job_id(*args, **kwargs))
        derived = derive_id(self.name, self.func, args, kwargs)
        return derived if self._derived_ids_fit else normalise_id(derived)

    # What every enqueue of this task shares, worked out once (on first use, so that a task
    # made by hand with a bad option fails where it is enqueued, as before).
    @cached_property
    def _derived_ids_fit(self) -> bool:
        """Whether a derived id (the name, ':' and 32 hex digits) is short enough for an id."""
        return len(self.name.encode("utf-8", errors="surrogatepass")) + 33 <= MAX_ID_BYTES

    @cached_property
    def _add_options(self) -> AddOptions:
        return add_options(
            self.if_processing, self.delay, self.priority, self.if_queued, self.hold_for
        )

    @cached_property
    def _body_prefix(self) -> str:
        return body_prefix(self.name, self.policy_json)

    def group_for(self, *args: Any, **kwargs: Any) -> str:
        """The group key of the job ``enqueue(*args, **kwargs)`` adds ('': none)."""
        if self.group is None:
            return ""
        group = self.group(*args, **kwargs) if callable(self.group) else self.group
        try:
            return check_group(group)
        except InvalidJob as exc:
            raise InvalidJob(f"Task {self.name}: {exc}") from None

    def _payload(self, queue: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return encode_payload(
            {"args": list(args), "kwargs": kwargs},
            queue.config.max_payload_bytes,
            queue.name,
            what=f"The arguments of task {self.name}",
        )

    def enqueue(self, *args: Any, **kwargs: Any) -> AddResult:
        """Queue a run with these arguments (kept in the payload); one round trip."""
        queue = get_queue(self.queue)
        payload = self._payload(queue, args, kwargs)
        return queue._add_checked(
            self._body_prefix,
            [self.id_for(*args, **kwargs)],
            [payload],
            self._add_options,
            self.group_for(*args, **kwargs),
        )[0]

    def cancel(self, *args: Any, **kwargs: Any) -> str | None:
        """Cancel the job ``enqueue(*args, **kwargs)`` would add (``Queue.cancel``); return the
        state it was in, or None when there was nothing to cancel."""
        return get_queue(self.queue).cancel(self.id_for(*args, **kwargs))

    def enqueue_on_commit(self, *args: Any, using: str | None = None, **kwargs: Any) -> None:
        """Queue the run when the current transaction commits (never, if it rolls back)."""
        queue = get_queue(self.queue)  # fail now, in the caller's code, not after the commit
        self._payload(queue, args, kwargs)
        self.id_for(*args, **kwargs)
        self.group_for(*args, **kwargs)
        transaction.on_commit(lambda: self.enqueue(*args, **kwargs), using=using)


def convoy_task(
    func: Callable[..., Any] | None = None,
    *,
    queue: str = "default",
    job_id: Callable[..., Any] | None = None,
    if_processing: str = "ignore",
    priority: int = 0,
    if_queued: str = "keep",
    hold_for: float = 0,
    group: Callable[..., Any] | str | None = None,
    cron: str | None = None,
    every: int | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    backoff: float | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    expires: Any = None,
) -> Any:
    """Register a function as a convoy task; usable bare (``@convoy_task``) or with options.

    ``cron`` or ``every`` also schedules it (with no arguments), as a ``CONVOY["SCHEDULE"]``
    entry named after the task's dotted path would; ``manage.py check`` validates them.
    ``max_attempts``, ``timeout`` (seconds, 0: none) and ``backoff`` (seconds) override the
    queue's ``MAX_ATTEMPTS``, ``JOB_TIMEOUT`` and ``RETRY_BACKOFF`` for this task's jobs;
    ``retry_on`` retries only those exception types; ``expires`` (seconds after the add, or a
    datetime) fails a job not started by then, with reason ``expired``. Each job carries them.
    ``group`` gives each job its group key (flow control), e.g. ``lambda tenant_id, *a, **k:
    f"tenant-{tenant_id}"``: called with the arguments of ``enqueue``.
    """

    def register(func: Callable[..., Any]) -> ConvoyTask:
        check_add_options(if_processing, 0, priority)
        check_dedupe_options(if_queued, hold_for)
        name = f"{func.__module__}.{func.__qualname__}"
        policy = task_policy(name, max_attempts, timeout, backoff, retry_on, expires)
        task = ConvoyTask(
            func=func,
            name=name,
            queue=queue,
            job_id=job_id,
            if_processing=if_processing,
            priority=priority,
            if_queued=if_queued,
            hold_for=hold_for,
            group=group,
            cron=cron,
            every=every,
            policy_json=json.dumps(policy, separators=(",", ":")) if policy else "",
        )
        _tasks[task.name] = task
        return task

    return register(func) if func is not None else register


def convoy_processor(
    queue: str,
) -> Callable[[Callable[[str, Any], Any]], Callable[[str, Any], Any]]:
    """Register ``func(job_id, payload)`` to run the plain ``add_job`` jobs of ``queue``."""

    def register(func: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
        existing = _processors.get(queue)
        if existing is not None and existing is not func:
            raise ValueError(
                f"Queue {queue!r} already has a processor, "
                f"{existing.__module__}.{existing.__qualname__}; a queue has one processor."
            )
        _processors[queue] = func
        return func

    return register
