"""How each script's reply reads: one decoder per reply shape, named in ``scripts.SPECS``.

A decoder gets the queue's name, the script's ARGV and the raw reply, and returns the records
of ``records.py``. Numbers go through ``to_int``: Lua may print them in exponent notation.
"""

from __future__ import annotations

import json
from typing import Any

from .bodies import decode_body, split_body
from .counters import Counters
from .records import (
    DONE,
    ClaimBatch,
    DataMarks,
    GroupPage,
    GroupRow,
    HeldRuns,
    Job,
    JobResult,
    JobRow,
    Progress,
    RecordHead,
    Run,
    RunRecord,
    Tick,
    from_ms,
    state_times,
    to_int,
)

CLAIM_HEADER = 6  # now, next due, paused, sequence, born, waiting; then per run:
CLAIM_RUN = 5  # id, body, attempt, token, jams
JAM_ROW = 7  # id, action, worker, started_ms, deadline_ms, attempts, jams
BROWSE_ROW = 10
COUNTS = (
    "queued",
    "processing",
    "jammed",
    "scheduled",
    "failed",
    "processed_total",
    "failed_total",
)


def as_is(queue: str, args: list[Any], reply: Any) -> Any:
    """The reply itself: a verdict ('retry', 'stale', ...), per-run flags, or ids."""
    return reply


def as_int(queue: str, args: list[Any], reply: Any) -> int:
    """A count or a Redis-clock time."""
    return to_int(reply)


def as_bool(queue: str, args: list[Any], reply: Any) -> bool:
    """A yes (1) or a no (0)."""
    return bool(to_int(reply))


def as_ints(queue: str, args: list[Any], reply: list[Any]) -> list[int]:
    """Numbers: Redis-clock times, counts."""
    return [to_int(item) for item in reply]


def added(queue: str, args: list[Any], reply: list[Any]) -> list[tuple[bool, str, bool, bool]]:
    """add.lua: per job (added, state now, rerun requested and pending, body replaced)."""
    return [
        (reply[i] == 1, reply[i + 1], bool(reply[i + 2]), reply[i] == 2)
        for i in range(0, len(reply), 3)
    ]


def claimed(queue: str, args: list[Any], reply: list[Any]) -> ClaimBatch:
    """claim.lua (claim_jobs in the prelude): the header, then the runs."""
    runs = [
        Run(
            queue,
            reply[i],
            reply[i + 1],
            to_int(reply[i + 2]),
            str(reply[i + 3]),
            to_int(reply[i + 4]),
        )
        for i in range(CLAIM_HEADER, len(reply), CLAIM_RUN)
    ]
    next_due = to_int(reply[1], -1)
    return ClaimBatch(
        runs,
        to_int(reply[0]),
        None if next_due < 0 else next_due,
        bool(to_int(reply[2])),
        DataMarks(to_int(reply[3]), reply[4]),
        bool(to_int(reply[5])),
    )


def acked_and_claimed(
    queue: str, args: list[Any], reply: list[Any]
) -> tuple[list[int], ClaimBatch]:
    """ack_claim.lua: the acks' replies, and the claim's."""
    acks, claim = reply
    return acks, claimed(queue, args, claim)


def jam_guarded(queue: str, args: list[Any], reply: list[Any]) -> tuple[int, int, list[list[Any]]]:
    """jam_guard.lua: Redis's now, until when recoveries are held (ms, 0: not held), and one
    row per recovered run (see ``JAM_ROW``)."""
    rows = [reply[i : i + JAM_ROW] for i in range(2, len(reply), JAM_ROW)]
    return to_int(reply[0]), to_int(reply[1]), rows


def handed_run(queue: str, message: str) -> Run:
    """A run in a worker's inbox, as ``hand_over`` in the prelude pushed it."""
    job_id, body, attempt, token = json.loads(message)
    return Run(queue, job_id, body, to_int(attempt), str(token))


def job(queue: str, args: list[Any], reply: list[Any]) -> Job | None:
    """inspect.lua: a snapshot of the job ``args[0]`` (state "done": only its result), or
    None."""
    if not reply[1]:
        return None
    _, state, score, body, counters, run, error, rerun, kept, *rest = reply
    result = JobResult.parse(kept) if kept else None
    if state == DONE:
        return _done(queue, args[0], result)
    try:
        task, payload = decode_body(body)
    except ValueError:
        task, payload = None, body
    head, holder = RecordHead.parse(counters), RunRecord.parse(run)
    try:
        last_error = json.loads(error) if error else None
    except ValueError:
        last_error = {"type": "unknown", "message": error, "traceback": ""}
    return Job(
        id=args[0],
        payload=payload,
        state=state,
        attempts=head.attempts,
        enqueued_at=from_ms(head.enqueued_ms),
        started_at=from_ms(holder.started_ms),
        worker=holder.worker,
        last_error=last_error,
        queue=queue,
        task=task,
        priority=head.priority,
        jams=head.jams,
        rerun_pending=bool(to_int(rerun)),
        result=result,
        progress=Progress.parse(rest[0], holder.started_ms) if rest and rest[0] else None,
        **state_times(state, score),
    )


def _done(queue: str, job_id: str, result: JobResult | None) -> Job | None:
    """A job that is over, of which only what its last run returned is left."""
    if result is None:  # a mangled result: nothing to show
        return None
    return Job(
        id=job_id,
        payload=None,
        state=DONE,
        attempts=result.attempt,
        enqueued_at=None,
        started_at=result.started_at,
        worker=result.worker,
        last_error=None,
        queue=queue,
        result=result,
    )


def counts(queue: str, args: list[Any], reply: list[Any]) -> dict[str, Any]:
    """stats.lua: the counts of each state and the totals, Redis's now, and the pause; then
    the enqueued time of the oldest queued job (``oldest_ms``, None) and the ``counters``;
    flow control's: until when RATE_LIMIT holds claims back (``throttled_until_ms``, None),
    how many groups have jobs (``groups``) and how many of them are held back
    (``groups_held``)."""
    found: dict[str, Any] = dict(zip(COUNTS, (to_int(v) for v in reply[1:8]), strict=True))
    found["paused"] = bool(to_int(reply[8]))
    found["now_ms"] = to_int(reply[0])
    found["oldest_ms"] = to_int(reply[9], None) if reply[9] != "" else None
    found["counters"] = Counters.from_hash(reply[10])
    found["throttled_until_ms"] = to_int(reply[11]) or None
    found["groups"] = to_int(reply[12])
    found["groups_held"] = to_int(reply[13])
    return found


def group_rows(queue: str, args: list[Any], reply: list[Any]) -> GroupPage:
    """groups.lua: Redis's now, how many groups, RATE_LIMIT's hold, and the page's groups."""
    rows = [
        GroupRow(
            reply[i],
            to_int(reply[i + 1]),
            to_int(reply[i + 2]),
            reply[i + 3] == "cap",
            from_ms(reply[i + 3]) if reply[i + 3] not in ("", "cap") else None,
        )
        for i in range(3, len(reply), 4)
    ]
    return GroupPage(to_int(reply[0]), to_int(reply[1]), from_ms(to_int(reply[2])), rows)


def page_rows(queue: str, args: list[Any], reply: list[Any]) -> tuple[int, int, list[JobRow]]:
    """browse.lua: Redis's now, how many jobs the state holds, and the page's rows."""
    state, now_ms = args[0], to_int(reply[0])
    rows = [
        _row(state, now_ms, *reply[i : i + BROWSE_ROW]) for i in range(2, len(reply), BROWSE_ROW)
    ]
    return now_ms, to_int(reply[1]), rows


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
    ran_ms: str,
) -> JobRow:
    complete = len(body_head.encode()) == to_int(body_bytes)
    task, payload = split_body(body_head, complete=complete)
    head, holder = RecordHead.parse(counters), RunRecord.parse(run)
    # Queued jobs are scored by priority and arrival, not by a time.
    state_ms = None if state == "queued" else to_int(score)
    return JobRow(
        id=job_id,
        state=state,
        task=task,
        payload_preview=payload,
        payload_cut=not complete,
        payload_bytes=to_int(body_bytes),
        priority=head.priority,
        attempts=head.attempts,
        jams=head.jams,
        enqueued_at=from_ms(head.enqueued_ms),
        started_at=from_ms(holder.started_ms),
        worker=holder.worker,
        seconds_until=None if state_ms is None else (state_ms - now_ms) / 1000,
        running_for=None if holder.started_ms is None else (now_ms - holder.started_ms) / 1000,
        error_type=error_type,
        error_message=error_message,
        rerun_pending=bool(to_int(rerun)),
        ran_for=to_int(ran_ms) / 1000 if ran_ms != "" else None,
        **state_times(state, state_ms),
    )


def held_runs(queue: str, args: list[Any], reply: list[Any]) -> dict[str, HeldRuns]:
    """running.lua: per worker id, the runs of this queue it holds now (oldest listed)."""
    now_ms, found, i = to_int(reply[0]), {}, 1
    while i < len(reply):
        worker, count, listed = reply[i], to_int(reply[i + 1]), to_int(reply[i + 2])
        pairs = reply[i + 3 : i + 3 + 2 * listed]
        found[worker] = HeldRuns(
            queue,
            count,
            [(pairs[j], (now_ms - to_int(pairs[j + 1])) / 1000) for j in range(0, len(pairs), 2)],
        )
        i += 3 + 2 * listed
    return found


def task_added(queue: str, args: list[Any], reply: list[Any]) -> tuple[int, str, str]:
    """task_add.lua: Redis's now, the outcome, and the run's result id."""
    now, outcome, result_id = reply
    return to_int(now), outcome, result_id


def ticked(queue: str, args: list[Any], reply: list[Any]) -> Tick:
    """tick.lua: the outcome, Redis's now, the schedule's last tick after the call, the job."""
    outcome, now_ms, last_ms, job_id = reply
    last = to_int(last_ms, -1)
    return Tick(outcome, to_int(now_ms), last if last >= 0 else None, job_id)
