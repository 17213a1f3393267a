"""What an add accepts: payloads, options and times, checked before anything is written.

Times given in seconds are bounded: a far-future due time (a microsecond timestamp passed as
seconds, say) would reach Redis as a number it prints in exponent notation, and no job needs to
wait longer than ``MAX_DELAY_SECONDS``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from .exceptions import InvalidJob, PayloadTooLarge
from .retries import class_path

IF_PROCESSING = ("ignore", "rerun")
IF_QUEUED = ("keep", "replace")
MAX_DELAY_SECONDS = 10 * 365 * 24 * 3600  # ten years

# One encoder for every payload: json.dumps with options other than its defaults builds a new
# JSONEncoder on each call, a visible share of an add's client time.
PAYLOAD_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_payload(payload: Any, limit: int, queue: str, what: str = "The payload") -> str:
    """Serialise a payload to compact JSON, enforcing the queue's size limit."""
    try:
        text = PAYLOAD_ENCODER.encode(payload)
        # ASCII (the usual payload) is its own UTF-8: no copy to count it, nothing to refuse.
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"{what} is not JSON-serialisable: {exc}.") from None
    except RecursionError:
        raise InvalidJob(f"{what} is nested too deeply to serialise as JSON.") from None
    if size > limit:
        raise PayloadTooLarge(
            f"{what} is {size} bytes of JSON; queue {queue!r} accepts at most {limit} "
            "(MAX_PAYLOAD_BYTES)."
        )
    return text


def delay_seconds(delay: Any, name: str = "delay") -> float:
    """Return ``delay`` (seconds, or a ``timedelta``) as seconds; raise InvalidJob naming the
    option if it is not a number from 0 to ``MAX_DELAY_SECONDS``."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_DELAY_SECONDS
    ):
        raise InvalidJob(
            f"{name} must be a number of seconds >= 0 and at most {MAX_DELAY_SECONDS} (ten "
            f"years), or a timedelta, not {delay!r}."
        )
    return float(seconds)


def check_add_options(if_processing: str, delay: Any, priority: int) -> float:
    """Raise InvalidJob for an option an add cannot honour; return the delay in seconds."""
    if if_processing not in IF_PROCESSING:
        raise InvalidJob(f"if_processing must be one of {IF_PROCESSING}, not {if_processing!r}.")
    seconds = delay_seconds(delay)
    if isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100:
        raise InvalidJob(f"priority must be an int from -100 to 100, not {priority!r}.")
    return seconds


def check_dedupe_options(if_queued: str, hold_for: Any) -> int:
    """Raise InvalidJob for an ``if_queued`` or ``hold_for`` an add cannot honour; return the
    hold in ms (0: none)."""
    if if_queued not in IF_QUEUED:
        raise InvalidJob(f"if_queued must be one of {IF_QUEUED}, not {if_queued!r}.")
    return int(delay_seconds(hold_for, "hold_for") * 1000)


# An add's options as its script takes them: if_processing, delay (ms), priority, if_queued,
# hold (ms).
AddOptions = tuple[str, int, int, str, int]


def add_options(
    if_processing: str, delay: Any, priority: int, if_queued: str, hold_for: Any
) -> AddOptions:
    """Check an add's options (``check_add_options``, ``check_dedupe_options``); return them as
    the add script takes them."""
    seconds = check_add_options(if_processing, delay, priority)
    hold_ms = check_dedupe_options(if_queued, hold_for)
    return if_processing, int(seconds * 1000), priority, if_queued, hold_ms


def task_policy(
    name: str,
    max_attempts: Any,
    timeout: Any,
    backoff: Any,
    retry_on: Any,
    expires: Any,
) -> dict[str, Any]:
    """Check a task's own policy (``@convoy_task``); return what every job of it carries
    (``store.Policy``), as JSON-ready values. ``expires``: seconds (or a timedelta) after the
    job is added, by Redis's clock, or a datetime (naive: UTC). Raise InvalidJob naming the
    task and the option."""
    policy: dict[str, Any] = {}
    if max_attempts is not None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidJob(
                f"Task {name}: max_attempts must be an int >= 1, not {max_attempts!r}."
            )
        policy["max_attempts"] = max_attempts
    for option, value in (("timeout", timeout), ("backoff", backoff)):
        if value is not None:
            policy[option] = delay_seconds(value, f"Task {name}: {option}")
    if retry_on is not None:
        classes = retry_on if isinstance(retry_on, tuple | list) else (retry_on,)
        if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
            raise InvalidJob(
                f"Task {name}: retry_on must be an exception class or a tuple of them, "
                f"not {retry_on!r}."
            )
        policy["retry_on"] = [class_path(c) for c in classes]
    if isinstance(expires, datetime):
        moment = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        policy["expires_at_ms"] = int(moment.timestamp() * 1000)
    elif expires is not None:
        seconds = delay_seconds(expires, f"Task {name}: expires")
        if seconds <= 0:
            raise InvalidJob(f"Task {name}: expires must be more than 0 seconds, not {expires!r}.")
        policy["expires_in"] = seconds
    return policy


def encode_result(value: Any, limit: int) -> tuple[str, bool]:
    """What a run returned, as convoy keeps it: (its compact JSON, True), or (why it is not
    kept, False) for a value that is not JSON or is over ``limit`` bytes (MAX_RESULT_BYTES).
    A value not kept does not fail its run: the run's work is done."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return f"not JSON ({type(exc).__name__}: {exc})", False
    size = len(text.encode())
    if size > limit:
        return (
            f"too large: {size:,} bytes of JSON, over this queue's MAX_RESULT_BYTES ({limit:,})",
            False,
        )
    return text, True
