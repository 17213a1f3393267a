"""The records convoy hands out: small frozen dataclasses over what the scripts return."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATES = ("scheduled", "queued", "processing", "jammed", "failed")


def from_ms(ms: str | int | float | None) -> datetime | None:
    """Convert a Redis-clock millisecond timestamp to an aware UTC datetime.

    None for a missing or hand-mangled value: reading a job must not fail on garbage that the
    scripts themselves tolerate.
    """
    try:
        return datetime.fromtimestamp(int(float(ms)) / 1000, tz=UTC) if ms else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class DataMarks:
    """What shows that Redis still holds a queue's data: a counter that only grows, and the
    time the queue was first used, which never changes."""

    sequence: int
    born: str


@dataclass(frozen=True)
class AddResult:
    """What an add did: whether this call queued the id, and where the id is now."""

    id: str
    added: bool
    state: str


@dataclass(frozen=True)
class Job:
    """A snapshot of one job, as ``Queue.get_job`` reads it from Redis in one atomic step."""

    id: str
    payload: Any
    state: str
    attempts: int
    enqueued_at: datetime | None
    started_at: datetime | None
    worker: str | None
    last_error: dict[str, Any] | None
    queue: str = ""
    task: str | None = None
    priority: int = 0
    jams: int = 0
    # Lease deadline while processing or jammed, due time while scheduled, failure time if failed.
    state_since_or_until: datetime | None = None
    rerun_pending: bool = False

    @property
    def lease_deadline(self) -> datetime | None:
        """When the lease of a processing (or jammed) job ends (ended)."""
        return self.state_since_or_until if self.state in ("processing", "jammed") else None

    @property
    def due_at(self) -> datetime | None:
        """When a scheduled job becomes due."""
        return self.state_since_or_until if self.state == "scheduled" else None

    @property
    def failed_at(self) -> datetime | None:
        """When a failed job failed for the last time."""
        return self.state_since_or_until if self.state == "failed" else None


@dataclass(frozen=True)
class RecoveredJob:
    """A jammed run the jam guard recovered, and why it was jammed."""

    id: str
    queue: str
    action: str  # "requeued" | "failed" (jammed more than MAX_JAMS times) | "rerun" | "dropped"
    worker: str
    started_at: datetime | None
    lease_expired_at: datetime | None
    attempts: int
    jams: int
    worker_gone: bool

    @property
    def reason(self) -> str:
        """Why the run was jammed, as the jam guard reports it."""
        if self.worker_gone:
            return f"worker {self.worker or '?'} gone (no heartbeat)"
        return f"lease expired (worker {self.worker or '?'} stopped renewing it)"


@dataclass(frozen=True)
class ClaimedJob:
    """A run handed to a worker: what it needs to execute it and to prove it still owns it."""

    queue: str
    id: str
    body: str
    attempt: int
    token: str


def encode_body(task: str | None, payload_json: str) -> str:
    """Build the stored body from an already encoded payload (no second serialisation)."""
    if task is None:
        return '{"payload":' + payload_json + "}"
    return '{"task":' + json.dumps(task) + ',"payload":' + payload_json + "}"


def decode_body(body: str) -> tuple[str | None, Any]:
    """Return (task, payload) of a stored body; raise ValueError if it is not a convoy body."""
    data = json.loads(body)
    if not isinstance(data, dict) or "payload" not in data:
        raise ValueError("not a convoy job body (a JSON object with a 'payload' key)")
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise ValueError(f"the body's task must be a string, not {task!r}")
    return task, data["payload"]
