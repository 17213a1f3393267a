"""The Redis key schema: the only place convoy builds key names.

Every key of one queue carries the queue name as a Redis Cluster hash tag, so that each Lua
script touches a single slot: ``convoy:{monsterTrucks}:queued``. The Lua prelude
(``lua/_prelude.lua``) reads ``KEYS`` in the order of :class:`QueueKeys`' fields; keep both in step
(``tests/test_store.py`` pins them together).
"""

from __future__ import annotations

from typing import NamedTuple


class QueueKeys(NamedTuple):
    """The keys of one queue, in the order every script receives them as ``KEYS``."""

    queued: str  # ZSET id -> (100 - priority) * 2**42 + sequence: ZPOPMIN is the next job
    scheduled: str  # ZSET id -> due time, ms by the Redis clock
    processing: str  # ZSET id -> lease deadline, ms by the Redis clock
    failed: str  # ZSET id -> time of the final failure, ms
    jobs: str  # HASH id -> "enqueued_ms|attempts|jams|priority|" + JSON {"task":, "payload":}
    run: str  # HASH id -> "token|started_ms|attempt|worker_id" while a worker holds the job
    rerun: str  # HASH id -> "priority|body" of the run to queue when the current one ends
    errors: str  # HASH id -> JSON of the job's last error
    seq: str  # STRING counter: FIFO order among equal priorities, and fencing tokens
    wake: str  # LIST of wake-up tokens that idle workers block on
    paused: str  # STRING present while the queue is paused
    stats: str  # HASH processed / failed totals; born: when the queue was first used
    throughput: str  # HASH "processed:<minute>" / "failed:<minute>" -> count, last hour
    idle: str  # ZSET "lease_ms|worker_id" -> deadline_ms * 1000 + free slots: waits for jobs
    held: str  # ZSET id -> until when adds of it are refused (hold_for); -hold_ms while live
    # Flow control (docs/design.rst): absent while no job has a group and no limit was spent.
    group: str  # HASH id -> group key of a job that has one
    grouped: str  # ZSET id -> queued score: the queued jobs with a group (queued: the others)
    lanes: str  # ZSET "group\0score\0id", scores 0: each group's queued jobs in order (lex)
    ring: str  # ZSET group -> turn: groups with queued jobs that may be claimed from
    parked: str  # ZSET group -> until ms (+inf: at GROUP_CONCURRENCY): groups held back
    groups: str  # ZSET group -> processing runs: every group with queued or processing jobs
    flow: str  # HASH the rate limits' token buckets (tat, tat:<group>), held, turn, plain


def inbox_key(keys: QueueKeys, worker_id: str) -> str:
    """Return the LIST of runs handed to ``worker_id`` while it waited (``idle``): beside the
    queue's other keys, so in their hash slot. Lua builds the same name (``inbox_of``)."""
    return keys.idle.removesuffix("idle") + f"inbox:{worker_id}"


def queue_keys(prefix: str, queue: str) -> QueueKeys:
    """Return the keys of ``queue`` under ``prefix``."""
    base = f"{prefix}:{{{queue}}}:"
    return QueueKeys(*(base + field for field in QueueKeys._fields))


def task_result_key(prefix: str, queue: str, result_id: str) -> str:
    """Return the HASH of one run's result of a Django task (``backends/results.py``)."""
    return f"{prefix}:{{{queue}}}:taskresult:{result_id}"


def job_result_key(prefix: str, queue: str, job_id: str) -> str:
    """Return the STRING holding what the last run of ``job_id`` returned (``keep_result``)."""
    return f"{prefix}:{{{queue}}}:result:{job_id}"


def progress_key(prefix: str, queue: str, job_id: str) -> str:
    """Return the STRING holding how far the live run of ``job_id`` got (``progress.lua``)."""
    return f"{prefix}:{{{queue}}}:progress:{job_id}"


def error_log_key(prefix: str, queue: str, day: str) -> str:
    """Return the key of the per-day error log (a capped LIST with a TTL) of ``queue``."""
    return f"{prefix}:{{{queue}}}:errorlog:{day}"


def workers_registry_key(prefix: str) -> str:
    """Return the ZSET of worker ids scored by their last heartbeat (ms, Redis clock)."""
    return f"{prefix}:{{workers}}:registry"


def worker_key(prefix: str, worker_id: str) -> str:
    """Return the HASH describing one worker; it expires when heartbeats stop."""
    return f"{prefix}:{{workers}}:{worker_id}"


class ScheduleKeys(NamedTuple):
    """The keys of the schedules whose jobs go to one queue: under the queue's hash tag, so that
    the tick script can add a tick's job to the queue in the same step (one Cluster slot)."""

    state: str  # HASH schedule name -> "last_tick_ms|fired_ms|outcome|job id" (tick.lua)
    paused: str  # SET of the names of the paused schedules


def schedule_keys(prefix: str, queue: str) -> ScheduleKeys:
    """Return the keys of the schedules of ``queue`` under ``prefix``."""
    base = f"{prefix}:{{{queue}}}:"
    return ScheduleKeys(base + "schedules", base + "schedules-paused")
