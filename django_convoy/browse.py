"""Read-only, paginated listings of one queue's jobs in one state, for the admin.

A page is one call of ``lua/browse.lua``: it ranges over the state's sorted set by rank, so a
page costs the same with a hundred jobs or a million, and the rows are one consistent snapshot.
Bodies and error messages come back cut to a preview: a page of 512 KiB payloads stays small.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from . import connection
from .job import STATES, from_ms
from .queue import Queue

PER_PAGE = 50
PREVIEW_BYTES = 240
FIELDS_PER_ROW = 9


@dataclass(frozen=True)
class JobRow:
    """One job as a listing shows it; times are aware UTC datetimes, durations seconds."""

    id: str
    state: str
    task: str | None
    payload_preview: str  # the payload's JSON, or its start when payload_cut
    payload_cut: bool
    payload_bytes: int  # of the whole stored body
    priority: int
    attempts: int
    jams: int
    enqueued_at: datetime | None
    started_at: datetime | None
    worker: str | None
    # Due time while scheduled, lease deadline while processing or jammed, failure time if failed.
    state_since_or_until: datetime | None
    # Seconds from the page's "now" to state_since_or_until: due in, lease left (< 0: overdue).
    seconds_to_state_time: float | None
    running_for: float | None  # seconds since the current run started, while a worker holds it
    error_type: str
    error_message: str
    rerun_pending: bool

    @property
    def past_lease(self) -> float | None:
        """How long ago a jammed job's lease ended."""
        if self.state != "jammed" or self.seconds_to_state_time is None:
            return None
        return -self.seconds_to_state_time


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


def list_jobs(queue: Queue, state: str, number: int = 1, per_page: int = PER_PAGE) -> Page:
    """Return page ``number`` of ``queue``'s jobs in ``state``; past the end, the last page."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}.")
    number = max(1, number)
    page = _fetch(queue, state, number, per_page)
    if not page.rows and page.number > page.num_pages:
        # The state shrank (or the link was made up): show its last page instead of nothing.
        page = _fetch(queue, state, page.num_pages, per_page)
    return page


def _fetch(queue: Queue, state: str, number: int, per_page: int) -> Page:
    with connection.reporting_unavailable(queue.client):
        reply = queue.scripts.browse(
            keys=queue.keys,
            args=[state, (number - 1) * per_page, per_page, PREVIEW_BYTES],
            client=queue.client,
        )
    now_ms, total = int(reply[0]), int(reply[1])
    rows = [
        _row(state, now_ms, *reply[i : i + FIELDS_PER_ROW])
        for i in range(2, len(reply), FIELDS_PER_ROW)
    ]
    return Page(queue.name, state, number, per_page, total, rows, from_ms(now_ms))


def _row(
    state: str,
    now_ms: int,
    job_id: str,
    score: str,
    body_bytes: int,
    body_head: str,
    counters: str,
    run: str,
    error_type: str,
    error_message: str,
    rerun: int,
) -> JobRow:
    complete = len(body_head.encode()) == int(body_bytes)
    task, payload = split_body(body_head, complete=complete)
    enqueued, attempts, jams, priority = (counters.split("|") + ["0"] * 4)[:4]
    _, started, worker = (run.split("|", 2) + ["", "", ""])[:3] if run else ("", "", "")
    # Queued jobs are scored by priority and arrival, not by a time.
    state_ms = None if state == "queued" else int(float(score))
    return JobRow(
        id=job_id,
        state=state,
        task=task,
        payload_preview=payload,
        payload_cut=not complete,
        payload_bytes=int(body_bytes),
        priority=_int(priority),
        attempts=_int(attempts),
        jams=_int(jams),
        enqueued_at=from_ms(enqueued),
        started_at=from_ms(started),
        worker=worker or None,
        state_since_or_until=from_ms(state_ms),
        seconds_to_state_time=None if state_ms is None else (state_ms - now_ms) / 1000,
        running_for=(now_ms - int(started)) / 1000 if started.isdigit() else None,
        error_type=error_type,
        error_message=error_message,
        rerun_pending=bool(int(rerun)),
    )


def split_body(head: str, *, complete: bool) -> tuple[str | None, str]:
    """Return (task, the payload's JSON text or its start) from the start of a stored body.

    ``job.encode_body`` writes ``{"task":<name>,"payload":<json>}`` or ``{"payload":<json>}``
    with the payload's compact JSON verbatim, so both can be read from a cut-off head without
    decoding the whole body. Anything else is shown as it is.
    """
    task, rest = None, head
    if head.startswith('{"task":'):
        try:
            task, end = json.JSONDecoder().raw_decode(head, len('{"task":'))
        except ValueError:
            return None, head
        if not isinstance(task, str):
            return None, head
        rest = "{" + head[end + 1 :] if head[end : end + 1] == "," else ""
    if not rest.startswith('{"payload":'):
        return None, head
    payload = rest[len('{"payload":') :]
    return task, payload[:-1] if complete and payload.endswith("}") else payload


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
