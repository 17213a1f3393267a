"""Job ids: what convoy accepts as one, and the one way an id is derived from a call's arguments.

``@convoy_task`` and the Tasks backend's ``UNIQUE_BY_ARGS`` derive ids here, so that the same
call gets the same id whichever way it is made.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from .exceptions import InvalidJob

MAX_ID_BYTES = 1024

# sort_keys: keyword arguments in any order are the same call. allow_nan=False: NaN is not JSON,
# and NaN != NaN would make two identical calls two ids.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def normalise_id(job_id: Any) -> str:
    """Return a job id as the string convoy stores; raise InvalidJob for anything else."""
    if isinstance(job_id, bool) or not isinstance(job_id, str | int):
        raise InvalidJob(f"A job id must be a str or an int, not {type(job_id).__name__}.")
    if isinstance(job_id, int) and abs(job_id) >= 10**MAX_ID_BYTES:
        raise InvalidJob(
            f"A job id must be 1 to {MAX_ID_BYTES} bytes of UTF-8; this int is longer."
        )
    text = str(job_id)
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if not 1 <= size <= MAX_ID_BYTES:
        raise InvalidJob(f"A job id must be 1 to {MAX_ID_BYTES} bytes of UTF-8, not {size}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJob(f"Job id {text!r} is not valid UTF-8: {exc.reason}.") from None
    return text


def shown(job_id: str) -> str:
    """``job_id`` as log lines and command output show it: as it is when every character is
    printable, else escaped, so that an id cannot end a line and forge the next one."""
    return job_id if job_id.isprintable() else repr(job_id)


def bound_arguments(
    name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults applied: ``add(1, 2)``, ``add(1, b=2)``
    and ``add(a=1, b=2)`` are one call. Raise InvalidJob naming the task if they do not fit."""
    binder = _binder(func)
    if binder is None:  # a builtin or a C function: take the call as it is
        return {"args": list(args), "kwargs": kwargs}
    names, defaults, signature = binder
    # The usual call, positional arguments to a function of plain parameters, is bound here:
    # Signature.bind costs more than the rest of an add's Python.
    if not kwargs and names is not None and len(args) <= len(names):
        tail = defaults[len(args) :]
        if not any(default is _NO_DEFAULT for default in tail):
            return dict(zip(names, (*args, *tail), strict=True))
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidJob(f"Task {name} cannot be called with these arguments: {exc}.") from None
    bound.apply_defaults()
    return dict(bound.arguments)


_NO_DEFAULT = inspect.Parameter.empty
_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


@cache
def _binder(
    func: Callable[..., Any],
) -> tuple[tuple[str, ...] | None, tuple[Any, ...], inspect.Signature] | None:
    """A function's signature, read once (reading it costs more than the rest of an add's
    Python), with its parameters' names and defaults when every one is a plain one (neither
    ``*args``, ``**kwargs``, keyword-only nor positional-only; else None); None for a function
    without one."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters.values()
    if any(parameter.kind is not _PLAIN for parameter in parameters):
        return None, (), signature
    return (
        tuple(parameter.name for parameter in parameters),
        tuple(parameter.default for parameter in parameters),
        signature,
    )


def derive_id(
    name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """The id of a task's call: its dotted ``name`` and a digest of its bound arguments."""
    arguments = bound_arguments(name, func, args, kwargs)
    try:
        canonical = _CANONICAL.encode(arguments)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(
            f"Task {name}: its arguments are not JSON, so no id can be derived from them: {exc}."
        ) from None
    digest = hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()
    return f"{name}:{digest[:32]}"
