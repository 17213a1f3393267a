"""The schedules: ``CONVOY["SCHEDULE"]`` and the tasks declared with ``cron=`` or ``every=``,
validated into ``Schedule``s.

Validation returns problems (``conf.Problem``) for ``manage.py check`` (``convoy.E017`` to
``convoy.E024``); ``get_schedules()`` raises ``ImproperlyConfigured`` with the same messages.
A schedule's task is a ``@convoy_task`` or a Django task on a ``ConvoyBackend``, named by its
dotted path: the settings are trusted code, so the path is imported if no task registered it.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import Problem
from ..decorators import ConvoyTask, registered_tasks
from .ticks import Cron, Every, Timing, cron_error

SCHEDULE_KEYS = (
    "task", "cron", "every", "timezone", "args", "kwargs", "overlap", "catch_up", "enabled",
    "jitter",
)  # fmt: skip
OVERLAP = ("skip", "allow")
CATCH_UP = ("latest", "none")
# Names go into job ids ("<name>@<tick>") and into a HASH field: no "@", no "|".
NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


@dataclass(frozen=True)
class Schedule:
    """One periodic job: which task, when, and what a tick does when the last run is live."""

    name: str
    task: str  # dotted path
    queue: str
    timing: Timing
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    overlap: str = "skip"
    catch_up: str = "latest"
    enabled: bool = True
    jitter: float = 0.0  # seconds: a tick's job is due up to this long after the tick
    priority: int = 0
    django_task: Any = None  # the django.tasks Task, when the task is one


def find_task(path: str) -> Any:
    """The ``ConvoyTask`` or Django ``Task`` at ``path``, or None."""
    found = registered_tasks().get(path)
    if found is not None:
        return found
    try:
        found = import_string(path)
    except ImportError:
        return None
    if isinstance(found, ConvoyTask) or _is_django_task(found):
        return found
    return None


def _is_django_task(candidate: Any) -> bool:
    return all(hasattr(candidate, a) for a in ("module_path", "queue_name", "backend", "call"))


def _convoy_backend(task: Any) -> Any:
    """The ``ConvoyBackend`` a Django task is enqueued through, or None."""
    from ..backends.backend import ConvoyBackend
    from ..backends.framework import task_backends

    try:
        backend = task_backends[task.backend]
    except Exception:  # an alias TASKS does not define (InvalidTaskBackend)
        return None
    return backend if isinstance(backend, ConvoyBackend) else None


def queue_of(task: Any) -> str | None:
    """The CONVOY queue a schedule of ``task`` adds its jobs to (None: no convoy queue)."""
    if isinstance(task, ConvoyTask):
        return task.queue
    backend = _convoy_backend(task)
    if backend is None:
        return None
    return backend.options.get("QUEUE_MAP", {}).get(task.queue_name, task.queue_name)


def declared() -> dict[str, dict[str, Any]]:
    """Every schedule's raw settings: ``CONVOY["SCHEDULE"]``'s, then those of the tasks declared
    with ``cron=`` or ``every=`` (named after the task's dotted path)."""
    raw = getattr(settings, "CONVOY", None)
    found = dict(raw.get("SCHEDULE") or {}) if isinstance(raw, dict) else {}
    for task in registered_tasks().values():
        if task.cron is not None or task.every is not None:
            entry = {"task": task.name, "cron": task.cron, "every": task.every}
            found.setdefault(task.name, {k: v for k, v in entry.items() if v is not None})
    return found


def schedule_problems(raw: Any) -> list[Problem]:
    """Every problem of the schedules (empty when they are valid)."""
    schedule = raw.get("SCHEDULE", {}) if isinstance(raw, dict) else {}
    if not isinstance(schedule, dict):
        return [
            Problem(
                "convoy.E017",
                f"CONVOY['SCHEDULE'] must be a dict of schedule name -> settings, not "
                f"{type(schedule).__name__}.",
                'e.g. "SCHEDULE": {"nightly-report": {"task": "reports.tasks.nightly", '
                '"cron": "0 3 * * *"}}',
            )
        ]
    queues = raw.get("QUEUES") if isinstance(raw, dict) else None
    problems = []
    for name, entry in declared().items():
        problems += _entry_problems(name, entry, queues if isinstance(queues, dict) else None)
    return problems


def _entry_problems(name: Any, entry: Any, queues: dict | None) -> list[Problem]:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return [
            Problem(
                "convoy.E017",
                f"Schedule name {name!r} is not valid.",
                "Use 1-200 characters from letters, digits and _ . : - (a name goes into its "
                "ticks' job ids, '<name>@<time>').",
            )
        ]
    if not isinstance(entry, dict):
        return [
            Problem(
                "convoy.E017",
                f"The settings of schedule {name!r} must be a dict, not {type(entry).__name__}.",
            )
        ]
    problems = [
        Problem(
            "convoy.E018",
            f"Schedule {name!r} has an unknown key {key!r}.",
            f"Valid keys: {', '.join(SCHEDULE_KEYS)}.",
        )
        for key in entry
        if key not in SCHEDULE_KEYS
    ]
    problems += _timing_problems(name, entry) + _value_problems(name, entry)
    path = entry.get("task")
    task = find_task(path) if isinstance(path, str) else None
    if task is None:
        problems.append(
            Problem(
                "convoy.E022",
                f"Schedule {name!r}: task {path!r} is not a @convoy_task or a Django task.",
                "Give the dotted path of a function decorated with @convoy_task, or of a "
                "django.tasks @task enqueued through a ConvoyBackend.",
            )
        )
    elif queues is not None and queue_of(task) not in queues:
        target = queue_of(task)
        where = f"queue {target!r}" if target else "no ConvoyBackend"
        problems.append(
            Problem(
                "convoy.E023",
                f"Schedule {name!r}: task {path} goes to {where}, which is not in "
                f"CONVOY['QUEUES'] (configured: {', '.join(sorted(map(str, queues)))}).",
                "Add the queue to CONVOY['QUEUES'] or change the task's queue.",
            )
        )
    return problems


def _timing_problems(name: str, entry: dict) -> list[Problem]:
    cron, every = entry.get("cron"), entry.get("every")
    if (cron is None) == (every is None):
        return [
            Problem(
                "convoy.E019",
                f"Schedule {name!r} sets {'both' if cron is not None else 'neither of'} 'cron' "
                "and 'every'; set one.",
                '"cron": "*/5 * * * *" (a cron expression), or "every": 300 (seconds).',
            )
        ]
    if cron is not None:
        why = cron_error(cron) if isinstance(cron, str) else f"not a string: {cron!r}"
        if why:
            return [
                Problem(
                    "convoy.E020",
                    f"Schedule {name!r}: {cron!r} is not a valid cron expression ({why}).",
                    'Five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *".',
                )
            ]
    elif isinstance(every, bool) or not isinstance(every, int) or every < 1:
        return [
            Problem(
                "convoy.E021",
                f"Schedule {name!r}: every must be a whole number of seconds >= 1, not {every!r}.",
            )
        ]
    zone = entry.get("timezone", None)
    if zone is not None and (not isinstance(zone, str) or not _zone_exists(zone)):
        return [
            Problem(
                "convoy.E024",
                f"Schedule {name!r}: {zone!r} is not a known time zone.",
                'An IANA name such as "Europe/Paris" (the default is settings.TIME_ZONE).',
            )
        ]
    return []


def _zone_exists(zone: str) -> bool:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _value_problems(name: str, entry: dict) -> list[Problem]:
    """E021: a key of the wrong type or out of range."""
    wrong = []
    if not isinstance(entry.get("args", []), list | tuple):
        wrong.append(f"args must be a list, not {entry['args']!r}")
    if not isinstance(entry.get("kwargs", {}), dict):
        wrong.append(f"kwargs must be a dict, not {entry['kwargs']!r}")
    if entry.get("overlap", "skip") not in OVERLAP:
        wrong.append(f"overlap must be one of {OVERLAP}, not {entry['overlap']!r}")
    if entry.get("catch_up", "latest") not in CATCH_UP:
        wrong.append(f"catch_up must be one of {CATCH_UP}, not {entry['catch_up']!r}")
    if not isinstance(entry.get("enabled", True), bool):
        wrong.append(f"enabled must be True or False, not {entry['enabled']!r}")
    jitter = entry.get("jitter", 0)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or jitter < 0:
        wrong.append(f"jitter must be a number of seconds >= 0, not {jitter!r}")
    return [Problem("convoy.E021", f"Schedule {name!r}: {text}.") for text in wrong]


def build(name: str, entry: dict[str, Any]) -> Schedule:
    """A valid entry as a ``Schedule``."""
    task = find_task(entry["task"])
    zone = entry.get("timezone") or settings.TIME_ZONE or "UTC"
    timing: Timing = (
        Cron(entry["cron"], zone) if entry.get("cron") is not None else Every(entry["every"])
    )
    return Schedule(
        name=name,
        task=entry["task"],
        queue=queue_of(task),
        timing=timing,
        args=list(entry.get("args", [])),
        kwargs=dict(entry.get("kwargs", {})),
        overlap=entry.get("overlap", "skip"),
        catch_up=entry.get("catch_up", "latest"),
        enabled=entry.get("enabled", True),
        jitter=float(entry.get("jitter", 0)),
        priority=getattr(task, "priority", 0) or 0,
        django_task=None if isinstance(task, ConvoyTask) else task,
    )


@cache
def get_schedules() -> tuple[Schedule, ...]:
    """Every schedule, validated; raise ``ImproperlyConfigured`` if one is wrong."""
    from ..conf import get_config

    get_config()  # the queues and the connection first
    problems = schedule_problems(getattr(settings, "CONVOY", None))
    if problems:
        raise ImproperlyConfigured(" ".join(p.msg for p in problems))
    return tuple(build(name, entry) for name, entry in sorted(declared().items()))


@receiver(setting_changed)
def _forget_schedules(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONVOY", "TIME_ZONE", "TASKS"):
        get_schedules.cache_clear()
