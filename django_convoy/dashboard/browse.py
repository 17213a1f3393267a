"""Read-only, paginated listings of one queue's jobs in one state, for the admin.

A page is one call of ``lua/browse.lua``: it ranges over the state's sorted set by rank, so a
page costs the same with a hundred jobs or a million, and the rows are one consistent snapshot.
Bodies and error messages come back cut to a preview: a page of 512 KiB payloads stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from ..queue import ConvoyQueue
from ..store import JobRow, from_ms
from ..store.records import STATES, Progress

PER_PAGE = 50
PREVIEW_BYTES = 240


@dataclass(frozen=True)
class Page:
    """One page of a state's jobs, and where it sits among all of them."""

    queue: str
    state: str
    number: int
    per_page: int
    total: int
    rows: list[JobRow]
    now: datetime
    progress: dict[str, Progress] = field(default_factory=dict)  # processing: by job id

    @property
    def num_pages(self) -> int:
        """How many pages the state has (an empty state still has one, empty, page)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        """Whether there is a page before this one."""
        return self.number > 1

    @property
    def has_next(self) -> bool:
        """Whether there is a page after this one."""
        return self.number < self.num_pages

    @property
    def start_index(self) -> int:
        """The 1-based position of the first row in the whole state (0 if the page is empty)."""
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def end_index(self) -> int:
        """The 1-based position of the last row in the whole state."""
        return self.start_index + len(self.rows) - 1 if self.rows else 0

    def nearby_pages(self, around: int = 2) -> list[int]:
        """Page numbers to offer as links: the first, the last and a few around this one."""
        wanted = {1, self.num_pages, *range(self.number - around, self.number + around + 1)}
        return sorted(n for n in wanted if 1 <= n <= self.num_pages)


def list_jobs(queue: ConvoyQueue, state: str, number: int = 1, per_page: int = PER_PAGE) -> Page:
    """Return page ``number`` of ``queue``'s jobs in ``state``; past the end, the last page."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}.")
    number = max(1, number)
    page = _fetch(queue, state, number, per_page)
    if not page.rows and page.number > page.num_pages:
        # The state shrank (or the link was made up): show its last page instead of nothing.
        page = _fetch(queue, state, page.num_pages, per_page)
    return page


def _fetch(queue: ConvoyQueue, state: str, number: int, per_page: int) -> Page:
    now_ms, total, rows = queue.store.page(state, (number - 1) * per_page, per_page, PREVIEW_BYTES)
    progress = {}
    if state == "processing":  # one more round trip: how far each run got
        progress = queue.store.progress_of(
            [(row.id, _ms(row.started_at)) for row in rows if row.started_at]
        )
    return Page(queue.name, state, number, per_page, total, rows, from_ms(now_ms), progress)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
