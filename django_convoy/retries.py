"""When a failed run is tried again, and how long it waits: the one place of both rules."""

from __future__ import annotations

import random
from collections.abc import Iterable

from .exceptions import ConvoyError, JobTimeout

RETRY_BACKOFF_CAP = 3600.0


def failure_is_final(
    exc: BaseException | None,
    attempt: int,
    max_attempts: int,
    retry_on: Iterable[str] | None = None,
) -> bool:
    """Whether a failed run is the job's last: its attempts are spent; or it failed with one of
    convoy's own errors (an unknown task, a corrupt body, an expired job), which no retry can
    mend, a timeout (``JobTimeout``) excepted; or its task limits retries (``retry_on``, class
    paths) to exceptions it is not one of. ``exc`` is None for a run whose code could not say
    (its child process died): retried while attempts are left."""
    if attempt >= max_attempts:
        return True
    if exc is None:
        return False
    if isinstance(exc, ConvoyError) and not isinstance(exc, JobTimeout):
        return True
    return retry_on is not None and not is_one_of(exc, retry_on)


def is_one_of(exc: BaseException, class_paths: Iterable[str]) -> bool:
    """Whether ``exc`` is an instance of a class named in ``class_paths`` (by its module and
    qualified name, along its MRO: nothing read from Redis is imported)."""
    names = set(class_paths)
    return any(f"{cls.__module__}.{cls.__qualname__}" in names for cls in type(exc).__mro__)


def class_path(cls: type) -> str:
    """The name ``is_one_of`` knows a class by."""
    return f"{cls.__module__}.{cls.__qualname__}"


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds before retry number ``attempt``: doubled per attempt, jittered, at most an hour."""
    ceiling = min(RETRY_BACKOFF_CAP, backoff * 2 ** min(attempt - 1, 32))
    return ceiling * random.uniform(0.5, 1.0)
