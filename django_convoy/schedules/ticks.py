"""When a schedule ticks: a cron expression in a time zone, or every N seconds from the epoch.

A tick is an instant, in milliseconds since the epoch (UTC), so every scheduler computes the
same ticks whatever its own time zone, and the tick script compares them with Redis's clock.
Cron expressions are evaluated by cronsim, which follows Debian's cron through DST changes: a
job at a fixed time that falls in the hour skipped in spring runs once, when the clocks jump
(02:30 runs at 03:00); one in the hour repeated in autumn runs once, at its first occurrence.
Expressions with ``*`` in the minute or hour field follow the wall clock, as cron's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

# A tick may fire this late (scheduler restarts, a Redis outage) before it counts as missed:
# a minute, or five periods of an ``every`` shorter than 12 s.
LATE_MS = 60_000
LATE_PERIODS = 5


def cron_error(expression: str) -> str:
    """Why ``expression`` is not a cron expression cronsim accepts ("" if it is one)."""
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class Every:
    """A tick every ``seconds``, aligned to the epoch, so that every scheduler agrees."""

    seconds: int

    @property
    def period_ms(self) -> int:
        return self.seconds * 1000

    @property
    def late_ms(self) -> int:
        """How late a tick may fire before it counts as missed."""
        return min(LATE_MS, LATE_PERIODS * self.period_ms)

    def after(self, ms: int) -> int:
        """The first tick after ``ms``."""
        return (ms // self.period_ms + 1) * self.period_ms

    def at_or_before(self, ms: int) -> int | None:
        """The last tick at or before ``ms``."""
        return ms - ms % self.period_ms

    def before(self, ms: int) -> int | None:
        """The last tick before ``ms``."""
        return self.at_or_before(ms - 1)

    def describe(self) -> str:
        return f"every {self.seconds} s"


@dataclass(frozen=True)
class Cron:
    """The ticks of a five-field cron expression in time zone ``zone``."""

    expression: str
    zone: str

    @property
    def late_ms(self) -> int:
        """How late a tick may fire before it counts as missed (cron ticks are >= 1 min apart)."""
        return LATE_MS

    def _step(self, ms: int, reverse: bool = False) -> int | None:
        start = datetime.fromtimestamp(ms / 1000, ZoneInfo(self.zone))
        try:
            found = next(CronSim(self.expression, start, reverse=reverse))
        except StopIteration:  # no match within 50 years
            return None
        return int(found.timestamp() * 1000)

    def after(self, ms: int) -> int | None:
        """The first tick after ``ms`` (None: none within 50 years)."""
        return self._step(ms)

    def before(self, ms: int) -> int | None:
        """The last tick before ``ms`` (None: none within 50 years)."""
        return self._step(ms, reverse=True)

    def at_or_before(self, ms: int) -> int | None:
        """The last tick at or before ``ms``, as the forward ticks run: around a DST change the
        reverse walk may stop on an instant that the forward one skips (a repeated hour), so it
        only finds where to start walking forward from."""
        anchor = self.before(ms + 1)
        anchor = anchor and self.before(anchor)
        if anchor is None:
            return self.before(ms + 1)
        found = None
        tick = self.after(anchor)
        while tick is not None and tick <= ms:
            found, tick = tick, self.after(tick)
        return found

    def describe(self) -> str:
        return f"cron {self.expression} ({self.zone})"


Timing = Every | Cron
