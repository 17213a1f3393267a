"""A job's body: the JSON a job carries (its task, its task's policy, its payload), built and
read here only. ``encode_body`` writes the payload's JSON verbatim after the task's name and
policy, so a body's head can be read without decoding the payload (``policy_of``,
``split_body``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_POLICY_KEY = ',"policy":'


def body_prefix(task: str | None, policy_json: str = "") -> str:
    """The start of the body of a job of ``task``, up to its payload's JSON."""
    if task is None:
        return '{"payload":'
    policy = _POLICY_KEY + policy_json if policy_json else ""
    return '{"task":' + json.dumps(task) + policy + ',"payload":'


def encode_body(task: str | None, payload_json: str, policy_json: str = "") -> str:
    """Build the stored body from an already encoded payload (no second serialisation); a
    task's own policy (``Policy``) goes between its name and the payload."""
    return body_prefix(task, policy_json) + payload_json + "}"


@dataclass(frozen=True)
class Policy:
    """A task's own settings, carried in its job's body so that whichever worker runs the job
    applies them; each field overrides the queue's setting, None leaving it to the queue."""

    max_attempts: int | None = None
    timeout: float | None = None  # seconds (0: no limit)
    backoff: float | None = None  # base seconds before a retry
    retry_on: tuple[str, ...] | None = None  # class paths of the exceptions that are retried
    # A job not started by then fails as expired: seconds after it was added (Redis's clock),
    # or a moment (epoch ms).
    expires_in: float | None = None
    expires_at_ms: int | None = None

    def expires(self, enqueued_ms: int) -> int | None:
        """When a job added at ``enqueued_ms`` expires (epoch ms), or None if it never does."""
        if self.expires_in is not None:
            return enqueued_ms + int(self.expires_in * 1000)
        return self.expires_at_ms


NO_POLICY = Policy()
_DECODER = json.JSONDecoder()


def policy_head(body: str) -> str:
    """The start of ``body`` up to the end of its policy, without its payload (or trace
    context): what ``policy_of`` reads, so ``policy_of(policy_head(b)) == policy_of(b)``. A
    process pool's child shows its worker this much of each run, whatever the payload's size."""
    plain = _without_trace(body)
    task, end = _after_task(plain)
    if task is None or not plain.startswith(_POLICY_KEY, end):
        return plain[:end]
    try:
        _, stop = _DECODER.raw_decode(plain, end + len(_POLICY_KEY))
    except ValueError:
        return plain[:end]
    return plain[:stop]


def _without_trace(head: str) -> str:
    """A body's head after the trace context an add may put first (observability/tracing.py),
    as a body that never had one; ``''`` when the context is unreadable."""
    if not head.startswith('{"trace":'):
        return head
    try:
        _, end = _DECODER.raw_decode(head, len('{"trace":'))
    except ValueError:
        return ""
    return "{" + head[end + 1 :] if head[end : end + 1] == "," else ""


def _after_task(body: str) -> tuple[str | None, int]:
    """The task name at the start of a body (after any trace context) and where it ends in
    that body without the context; (None, 0) if there is none."""
    if not body.startswith('{"task":'):
        return None, 0
    try:
        task, end = _DECODER.raw_decode(body, len('{"task":'))
    except ValueError:
        return None, 0
    return (task, end) if isinstance(task, str) else (None, 0)


def policy_of(body: str) -> Policy:
    """The policy a task's body carries (``NO_POLICY`` if none), read from its start without
    decoding the payload; a mangled one reads as none."""
    body = _without_trace(body)
    task, end = _after_task(body)
    if task is None or not body.startswith(_POLICY_KEY, end):
        return NO_POLICY
    try:
        data, _ = _DECODER.raw_decode(body, end + len(_POLICY_KEY))
    except ValueError:
        return NO_POLICY
    if not isinstance(data, dict):
        return NO_POLICY
    retry_on = data.get("retry_on")
    return Policy(
        max_attempts=_number(data.get("max_attempts"), int),
        timeout=_number(data.get("timeout"), float),
        backoff=_number(data.get("backoff"), float),
        retry_on=tuple(map(str, retry_on)) if isinstance(retry_on, list) else None,
        expires_in=_number(data.get("expires_in"), float),
        expires_at_ms=_number(data.get("expires_at_ms"), int),
    )


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


def decode_body(body: str) -> tuple[str | None, Any]:
    """Return (task, payload) of a stored body; raise ValueError if it is not a convoy body."""
    try:
        data = json.loads(body)
    except RecursionError:  # written by hand: add_job refuses what json cannot read back
        raise ValueError("its JSON is nested too deep to read") from None
    if not isinstance(data, dict) or "payload" not in data:
        raise ValueError("not a convoy job body (a JSON object with a 'payload' key)")
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise ValueError(f"the body's task must be a string, not {task!r}")
    return task, data["payload"]


def split_body(head: str, *, complete: bool) -> tuple[str | None, str]:
    """Return (task, the payload's JSON text or its start) from the start of a stored body.

    ``encode_body`` writes ``{"task":<name>,"payload":<json>}`` (a policy may come between)
    or ``{"payload":<json>}`` with
    the payload's compact JSON verbatim, so both can be read from a cut-off head without
    decoding the whole body. Anything else is shown as it is.
    """
    original = head
    head = _without_trace(head)
    if not head:
        return None, original
    task, rest = None, head
    if head.startswith('{"task":'):
        task, end = _after_task(head)
        if task is None:
            return None, head
        if head.startswith(_POLICY_KEY, end):  # a task's policy (encode_body): skip it
            try:
                _, end = _DECODER.raw_decode(head, end + len(_POLICY_KEY))
            except ValueError:
                return None, head
        rest = "{" + head[end + 1 :] if head[end : end + 1] == "," else ""
    if not rest.startswith('{"payload":'):
        return None, head
    payload = rest[len('{"payload":') :]
    return task, payload[:-1] if complete and payload.endswith("}") else payload
