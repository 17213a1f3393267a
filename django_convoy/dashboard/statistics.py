"""What is going on in convoy right now: one function feeding the dashboard, its JSON and any CLI.

``get_statistics()`` reads every configured queue's counts, totals and last hour of throughput,
and the workers registry, in a few pipelined round trips whatever the number of jobs: counts
come from the sorted sets' cardinalities, never from listing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..conf import get_config
from ..queue import get_queue
from ..store import WorkerRecord, from_ms, worker_alive
from ..store.counters import Counters
from ..store.overview import paused, read_overview
from ..store.records import HeldRuns
from ..store.replies import COUNTS

THROUGHPUT_MINUTES = 60
RUNNING_LISTED = 5  # runs listed per worker and queue; the rest are counted


@dataclass(frozen=True)
class QueueStats:
    """One queue's counts and totals, and its outcomes per minute over the last hour."""

    name: str
    paused: bool
    queued: int
    processing: int
    jammed: int
    scheduled: int
    failed: int
    processed_total: int
    failed_total: int
    processed_per_minute: list[int]  # oldest minute first; the last is the current minute
    failed_per_minute: list[int]
    # Jobs per minute over the last 60 s: the current minute's count and the share of the
    # previous minute's that falls within the last 60 s (counts are kept per whole minute).
    processed_last_minute: float = 0.0
    failed_last_minute: float = 0.0
    oldest_seconds: float | None = None  # age of the oldest queued job (None: none queued)
    counters: Counters = field(default_factory=Counters)  # since the queue was first used
    # Flow control: whether RATE_LIMIT holds claims back now, how many groups have jobs and
    # how many of them are held back (at GROUP_CONCURRENCY, or out of GROUP_RATE_LIMIT).
    throttled: bool = False
    groups: int = 0
    groups_held: int = 0

    @property
    def wait_p50(self) -> float | None:
        """Median seconds from when a job could run to its first run's start (all time)."""
        return self.counters.wait.quantile(0.5)

    @property
    def wait_p95(self) -> float | None:
        """95th percentile of the same wait, in seconds."""
        return self.counters.wait.quantile(0.95)


@dataclass(frozen=True)
class WorkerStats:
    """A worker in the registry, as its last heartbeat described it."""

    id: str
    alive: bool  # False: its heartbeats stopped (it died, or it was stopped without notice)
    last_beat: datetime | None
    heartbeat_age: float  # seconds since its last heartbeat, by the Redis clock
    host: str
    pid: int | None
    queues: list[str]
    concurrency: dict[str, int]
    processed: int
    failed: int
    stopping: bool
    # The runs Redis says it holds now, longest running first (at most RUNNING_LISTED per
    # queue): {"queue", "id", "running_for"} each; ``running`` counts them all.
    current: list[dict[str, Any]]
    running: int = 0


@dataclass(frozen=True)
class Statistics:
    """Every configured queue and every registered worker, read at one moment."""

    now: datetime
    queues: list[QueueStats]
    workers: list[WorkerStats]

    @property
    def paused_queues(self) -> list[str]:
        """Names of the queues whose workers are told not to claim."""
        return [queue.name for queue in self.queues if queue.paused]

    def as_dict(self) -> dict[str, Any]:
        """Return the statistics as JSON-ready data (times as ISO 8601 strings)."""
        data = asdict(self)
        data["now"] = self.now.isoformat()
        for worker in data["workers"]:
            worker["last_beat"] = worker["last_beat"] and worker["last_beat"].isoformat()
        return data


def get_statistics(names: Sequence[str] | None = None) -> Statistics:
    """Read the state of every configured queue (or those named) and of the workers."""
    queues = [get_queue(name) for name in names or get_config().queues]
    seen = read_overview([queue.store for queue in queues], RUNNING_LISTED)
    queue_stats = [
        _queue_stats(queue.name, counts, throughput, seen.now_ms)
        for queue, counts, throughput in zip(queues, seen.counts, seen.throughput, strict=True)
    ]
    fleet = queues[0].store.fleet
    workers = [
        _worker_stats(record, seen.now_ms, seen.held) for record in fleet.records(seen.registry)
    ]
    # The living by id (rows stay put as the page refreshes), then the gone, latest seen first.
    workers.sort(key=lambda w: (not w.alive, 0 if w.alive else w.heartbeat_age, w.id))
    return Statistics(from_ms(seen.now_ms), queue_stats, workers)


def paused_queues() -> list[str]:
    """Return the names of the paused queues (one round trip; for pages that need only that)."""
    return paused([get_queue(name).store for name in get_config().queues])


def _queue_stats(
    name: str, counts: dict[str, Any], throughput: dict[str, str], now_ms: int
) -> QueueStats:
    minute = now_ms // 60000
    first = minute - THROUGHPUT_MINUTES + 1
    series = {"processed": [0] * THROUGHPUT_MINUTES, "failed": [0] * THROUGHPUT_MINUTES}
    for name_at, count in throughput.items():
        outcome, _, at = name_at.partition(":")
        if outcome in series and at.isdigit() and first <= int(at) <= minute:
            series[outcome][int(at) - first] = int(count)
    past = 1 - (now_ms % 60000) / 60000  # the share of the previous minute within 60 s
    oldest = counts["oldest_ms"]
    return QueueStats(
        name,
        counts["paused"],
        *(counts[key] for key in COUNTS),
        processed_per_minute=series["processed"],
        failed_per_minute=series["failed"],
        processed_last_minute=series["processed"][-1] + past * series["processed"][-2],
        failed_last_minute=series["failed"][-1] + past * series["failed"][-2],
        oldest_seconds=None if oldest is None else max(0, now_ms - oldest) / 1000,
        counters=counts["counters"],
        throttled=counts["throttled_until_ms"] is not None,
        groups=counts["groups"],
        groups_held=counts["groups_held"],
    )


def _worker_stats(
    record: WorkerRecord, now_ms: int, held: list[dict[str, HeldRuns]]
) -> WorkerStats:
    info = record.info
    # The worker's record lives as long as its registry entry (an hour); whether it is gone is
    # read from its beat, by the rule the jam guard uses too.
    beat = record.beat_ms
    last_beat = int(beat) if beat and beat.isdigit() else record.registry_beat_ms
    alive = worker_alive(now_ms, beat, record.every_ms)
    return WorkerStats(
        id=record.id,
        alive=alive,
        last_beat=from_ms(last_beat),
        heartbeat_age=max(0, now_ms - last_beat) / 1000,
        host=str(info.get("host", "")),
        pid=info.get("pid") if isinstance(info.get("pid"), int) else None,
        queues=[str(name) for name in info.get("queues", [])],
        concurrency=dict(info.get("concurrency", {})),
        processed=_int(info.get("processed")),
        failed=_int(info.get("failed")),
        stopping=bool(info.get("stopping")),
        current=[
            {"queue": runs.queue, "id": job_id, "running_for": seconds}
            for runs in _held_by(record.id, held)
            for job_id, seconds in runs.oldest
        ],
        running=sum(runs.count for runs in _held_by(record.id, held)),
    )


def _held_by(worker_id: str, held: list[dict[str, HeldRuns]]) -> list[HeldRuns]:
    """The runs a worker holds, its ``--pool processes`` children's too (they hold theirs
    under ids of the form ``<worker id>/<n>``)."""
    children = worker_id + "/"
    return [
        runs
        for by_worker in held
        for holder, runs in by_worker.items()
        if holder == worker_id or holder.startswith(children)
    ]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
