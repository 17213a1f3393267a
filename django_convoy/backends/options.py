"""A ``ConvoyBackend``'s ``OPTIONS``: defaults, validation (``convoy.E101``, ``E102``), and
the validated view the backend uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

OPTION_DEFAULTS: dict[str, Any] = {
    "QUEUE_MAP": {},
    "RESULT_TTL": 24 * 3600.0,
    "UNIQUE_BY_ARGS": False,
    "ENQUEUE_ON_COMMIT": True,  # inside atomic(): at the commit (docs/django-tasks.rst)
    "DATABASE": DEFAULT_DB_ALIAS,
}


@dataclass(frozen=True)
class Options:
    """A ConvoyBackend's ``OPTIONS``, validated, with defaults filled in."""

    queue_map: dict[str, str]
    result_ttl: float
    unique_by_args: bool
    enqueue_on_commit: bool
    database: str

    @classmethod
    def from_raw(cls, options: dict[str, Any]) -> Options:
        """The options with defaults filled in (``option_problems`` found none)."""
        values = {**OPTION_DEFAULTS, **options}
        return cls(
            queue_map=dict(values["QUEUE_MAP"]),
            result_ttl=float(values["RESULT_TTL"]),
            unique_by_args=values["UNIQUE_BY_ARGS"],
            enqueue_on_commit=values["ENQUEUE_ON_COMMIT"],
            database=values["DATABASE"],
        )


def option_problems(alias: str, options: Any) -> list[tuple[str, str, str]]:
    """Every problem of OPTIONS, as (check id, message, hint)."""
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if not isinstance(options, dict):
        return [("convoy.E101", f"{where} must be a dict, not {type(options).__name__}.", "")]
    valid = f"Valid keys: {', '.join(OPTION_DEFAULTS)}."
    problems = [
        ("convoy.E101", f"{where} has an unknown key {key!r}.", valid)
        for key in options
        if key not in OPTION_DEFAULTS
    ]
    values = {**OPTION_DEFAULTS, **options}
    wrong = []
    queue_map = values["QUEUE_MAP"]
    if not isinstance(queue_map, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in queue_map.items()
    ):
        wrong.append(("QUEUE_MAP", "a dict of Django queue name to CONVOY queue name"))
    ttl = values["RESULT_TTL"]
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        wrong.append(("RESULT_TTL", "a number of seconds > 0"))
    for key in ("UNIQUE_BY_ARGS", "ENQUEUE_ON_COMMIT"):
        if not isinstance(values[key], bool):
            wrong.append((key, "True or False"))
    if values["DATABASE"] not in settings.DATABASES:
        wrong.append(("DATABASE", f"an alias in DATABASES ({', '.join(settings.DATABASES)})"))
    problems += [
        ("convoy.E102", f"{where}[{key!r}] must be {kind}, not {values[key]!r}.", "")
        for key, kind in wrong
    ]
    return problems
