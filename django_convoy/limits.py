"""Flow control settings: ``RATE_LIMIT``, ``GROUP_CONCURRENCY`` and ``GROUP_RATE_LIMIT``.

A rate limit reads ``"100/s"``, ``"30/m"``, ``"1000/h"``, with an optional burst: ``"100/s burst
200"``. It is a token bucket that holds ``burst`` starts (by default the rate's count: one
period's worth) and refills at the rate, kept in Redis and spent by the claim script on Redis's
clock, so that it holds for the whole fleet (see ``docs/flow-control.rst``). The scripts get the
limits of a queue as one ARGV string (``flow_spec``): every process reads the same settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .exceptions import InvalidJob

PERIODS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}
RATE = re.compile(r"\s*(?P<count>\d+)\s*/\s*(?P<unit>[smh])(?:\s+burst\s+(?P<burst>\d+))?\s*")
MAX_GROUP_BYTES = 200


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` runs start per ``period_ms`` on average, ``burst`` at most at once."""

    count: int
    period_ms: int
    burst: int

    @property
    def interval_ms(self) -> float:
        """The time one start's token takes to come back."""
        return self.period_ms / self.count

    def __str__(self) -> str:
        unit = next(u for u, ms in PERIODS_MS.items() if ms == self.period_ms)
        shown = f"{self.count}/{unit}"
        return shown if self.burst == self.count else f"{shown} burst {self.burst}"


def parse_rate(text: str, what: str) -> RateLimit:
    """Read a rate limit; raise ``ValueError`` naming ``what`` and the valid forms."""
    match = RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{what} must look like '100/s' or '100/s burst 200', got {text!r}.")
    count = int(match["count"])
    burst = int(match["burst"]) if match["burst"] is not None else count
    if count < 1 or burst < 1:
        raise ValueError(
            f"{what} must allow at least one run per period and a burst of at "
            f"least 1, got {text!r}."
        )
    return RateLimit(count, PERIODS_MS[match["unit"]], burst)


def rate_problem(value: Any, what: str) -> str | None:
    """The message saying why ``value`` is not a rate limit, or None when it is one (or None)."""
    if value is None:
        return None
    try:
        parse_rate(value, what)
    except ValueError as exc:
        return str(exc)
    return None


def flow_spec(
    rate: RateLimit | None, group_concurrency: int | None, group_rate: RateLimit | None
) -> str:
    """The limits as the scripts read them (``read_flow`` in the prelude): "interval_ms,burst,
    group cap,group interval_ms,group burst", each part empty when not set; '' for none."""
    if rate is None and group_concurrency is None and group_rate is None:
        return ""
    parts = [
        f"{rate.interval_ms!r}" if rate else "",
        str(rate.burst) if rate else "",
        str(group_concurrency or ""),
        f"{group_rate.interval_ms!r}" if group_rate else "",
        str(group_rate.burst) if group_rate else "",
    ]
    return ",".join(parts)


def normalise_group(group: Any) -> str:
    """Check a job's group key and return it as stored: '' for none. Raise ``ValueError``."""
    if group is None or group == "":
        return ""
    if isinstance(group, bool) or not isinstance(group, str | int):
        raise ValueError(f"A job's group must be a string or an integer, not {group!r}.")
    text = str(group)
    if "\0" in text or len(text.encode()) > MAX_GROUP_BYTES:
        raise ValueError(
            f"A job's group must be at most {MAX_GROUP_BYTES} bytes without NUL characters, "
            f"got {text[:60]!r}."
        )
    return text


def check_group(group: Any) -> str:
    """Raise InvalidJob for a group key an add cannot store; return it as stored ('': none)."""
    try:
        return normalise_group(group)
    except ValueError as exc:
        raise InvalidJob(str(exc)) from None
