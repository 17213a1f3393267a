"""When a failed run is tried again, and how long it waits: the one place of both rules."""

from __future__ import annotations

import random

from .exceptions import ConvoyError

RETRY_BACKOFF_CAP = 3600.0


def failure_is_final(exc: BaseException | None, attempt: int, max_attempts: int) -> bool:
    """Whether a failed run is the job's last: its attempts are spent, or it failed with one of
    convoy's own errors (an unknown task, a corrupt body), which no retry can mend. ``exc`` is
    None for failures convoy saw from outside the job's code (a timeout)."""
    return isinstance(exc, ConvoyError) or attempt >= max_attempts


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds before retry number ``attempt``: doubled per attempt, jittered, at most an hour."""
    ceiling = min(RETRY_BACKOFF_CAP, backoff * 2 ** min(attempt - 1, 32))
    return ceiling * random.uniform(0.5, 1.0)
