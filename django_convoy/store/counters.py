"""The counters and histograms the scripts keep in a queue's ``stats`` HASH, read.

The scripts that already run count as they go (``count_in`` and ``observe`` in
``lua/_prelude.lua``): adds and duplicates, retries, jam recoveries by action, fenced writes
refused, and two histograms, of how long jobs waited for their first run and how long runs took.
Kept in Redis, they are the whole fleet's: any process reads them, none has to be scraped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from .records import to_int

HISTOGRAMS = ("wait", "duration")
RECOVERY_ACTIONS = ("requeued", "failed", "rerun", "dropped")


@cache
def bounds_ms() -> tuple[int, ...]:
    """The histograms' bucket bounds in ms, read from the prelude, their one definition."""
    prelude = files("django_convoy.store").joinpath("lua", "_prelude.lua").read_text("utf-8")
    found = re.search(r"local HISTOGRAM_BOUNDS_MS = \{([^}]*)\}", prelude)
    if found is None:
        raise RuntimeError("the Lua prelude no longer defines HISTOGRAM_BOUNDS_MS")
    return tuple(int(part) for part in found.group(1).replace("\n", " ").split(",") if part.strip())


@dataclass(frozen=True)
class Histogram:
    """A histogram as Prometheus has them: cumulative counts per upper bound, the count, the sum."""

    buckets: tuple[tuple[float, int], ...]  # (upper bound in seconds, runs at or under it)
    count: int  # every observation (the +Inf bucket)
    sum: float  # seconds

    @classmethod
    def from_fields(cls, name: str, fields: dict[str, str]) -> Histogram:
        """Read histogram ``name`` from the stats HASH's fields."""
        total, cumulative = 0, []
        for bound in bounds_ms():
            total += to_int(fields.get(f"{name}:le:{bound}"))
            cumulative.append((bound / 1000, total))
        total += to_int(fields.get(f"{name}:le:inf"))
        return cls(tuple(cumulative), total, to_int(fields.get(f"{name}:sum_ms")) / 1000)

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q`` quantile in seconds, as PromQL's ``histogram_quantile`` does
        (linear within a bucket); None without observations. Past the last bound: that bound."""
        if not self.count:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0
        for bound, count in self.buckets:
            if count >= rank:
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = bound, count
        return self.buckets[-1][0]


@dataclass(frozen=True)
class Counters:
    """Everything counted for one queue since it was first used."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    stale_writes_refused: int = 0
    added: int = 0
    duplicate: int = 0
    recovered: dict[str, int] = field(default_factory=dict)  # by jam guard action
    wait: Histogram = field(default_factory=lambda: Histogram.from_fields("wait", {}))
    duration: Histogram = field(default_factory=lambda: Histogram.from_fields("duration", {}))

    @classmethod
    def from_hash(cls, flat: Any) -> Counters:
        """Read the stats HASH, as HGETALL inside a script returns it (field, value, ...) or as
        a dict."""
        fields = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
        return cls(
            processed=to_int(fields.get("processed")),
            failed=to_int(fields.get("failed")),
            retried=to_int(fields.get("retried")),
            stale_writes_refused=to_int(fields.get("stale")),
            added=to_int(fields.get("added")),
            duplicate=to_int(fields.get("duplicate")),
            recovered={
                action: to_int(fields.get(f"recovered:{action}")) for action in RECOVERY_ACTIONS
            },
            wait=Histogram.from_fields("wait", fields),
            duration=Histogram.from_fields("duration", fields),
        )
