"""What ``convoy_stats`` prints: the statistics as tables for a terminal, or as JSON for scripts.

Both come from ``get_statistics()``, the function behind the admin's overview and the metrics.
"""

from __future__ import annotations

from typing import Any

from ..dashboard import display
from ..dashboard.statistics import QueueStats, Statistics, WorkerStats

QUEUE_COLUMNS = (
    "QUEUE",
    "QUEUED",
    "PROCESSING",
    "JAMMED",
    "SCHEDULED",
    "FAILED",
    "DONE/MIN",
    "FAILED/MIN",
    "OLDEST",
    "WAIT P50",
    "WAIT P95",
    "WORKERS",
)
WORKER_COLUMNS = ("WORKER", "STATUS", "HOST", "PID", "QUEUES", "BEAT", "RUNNING", "DONE", "FAILED")


def workers_of(statistics: Statistics, queue: str) -> int:
    """How many workers alive serve ``queue``."""
    return sum(1 for worker in statistics.workers if worker.alive and queue in worker.queues)


def queue_data(queue: QueueStats, workers: int) -> dict[str, Any]:
    """One queue as ``convoy_stats --json`` prints it."""
    counters = queue.counters
    return {
        "paused": queue.paused,
        "queued": queue.queued,
        "processing": queue.processing,
        "jammed": queue.jammed,
        "scheduled": queue.scheduled,
        "failed": queue.failed,
        "processed_total": queue.processed_total,
        "failed_total": queue.failed_total,
        "retried_total": counters.retried,
        "recovered_total": dict(counters.recovered),
        "adds_total": {"added": counters.added, "duplicate": counters.duplicate},
        "stale_writes_refused_total": counters.stale_writes_refused,
        "processed_last_minute": round(queue.processed_last_minute, 1),
        "failed_last_minute": round(queue.failed_last_minute, 1),
        "oldest_seconds": queue.oldest_seconds,
        "wait_p50_seconds": queue.wait_p50,
        "wait_p95_seconds": queue.wait_p95,
        "duration_p50_seconds": counters.duration.quantile(0.5),
        "duration_p95_seconds": counters.duration.quantile(0.95),
        "workers": workers,
        "throttled": queue.throttled,
        "groups": queue.groups,
        "groups_held": queue.groups_held,
    }


def worker_data(worker: WorkerStats) -> dict[str, Any]:
    """One worker as ``convoy_stats --json`` prints it."""
    return {
        "id": worker.id,
        "alive": worker.alive,
        "host": worker.host,
        "pid": worker.pid,
        "queues": worker.queues,
        "heartbeat_age": worker.heartbeat_age,
        "running": worker.running,
        "processed": worker.processed,
        "failed": worker.failed,
        "stopping": worker.stopping,
    }


def as_json_data(statistics: Statistics) -> dict[str, Any]:
    """``{"now": ..., "queues": {name: {...}}, "workers": [...]}``."""
    return {
        "now": statistics.now.isoformat(),
        "queues": {
            queue.name: queue_data(queue, workers_of(statistics, queue.name))
            for queue in statistics.queues
        },
        "workers": [worker_data(worker) for worker in statistics.workers],
    }


def tables(statistics: Statistics) -> list[str]:
    """The queues' table, then the workers', as lines of text."""
    queue_rows = [
        [
            queue.name
            + (" (paused)" if queue.paused else "")
            + (" (throttled)" if queue.throttled else ""),
            *(
                _count(n)
                for n in (
                    queue.queued,
                    queue.processing,
                    queue.jammed,
                    queue.scheduled,
                    queue.failed,
                )
            ),
            _count(round(queue.processed_last_minute)),
            _count(round(queue.failed_last_minute)),
            _duration(queue.oldest_seconds),
            _duration(queue.wait_p50),
            _duration(queue.wait_p95),
            str(workers_of(statistics, queue.name)),
        ]
        for queue in statistics.queues
    ]
    worker_rows = [
        [
            worker.id,
            "stopping" if worker.stopping and worker.alive else "alive" if worker.alive else "gone",
            worker.host,
            str(worker.pid or ""),
            ",".join(worker.queues),
            _duration(worker.heartbeat_age),
            _count(worker.running),
            _count(worker.processed),
            _count(worker.failed),
        ]
        for worker in statistics.workers
    ]
    lines = _table(QUEUE_COLUMNS, queue_rows, left=1)
    lines.append("")
    if worker_rows:
        lines += _table(WORKER_COLUMNS, worker_rows, left=5)
    else:
        lines.append("No worker has sent a heartbeat in the last hour.")
    return lines


def _table(header: tuple[str, ...], rows: list[list[str]], left: int) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` columns (and QUEUES) to the
    left, numbers to the right."""
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _count(n: int) -> str:
    return f"{n:,}"


def _duration(seconds: float | None) -> str:
    """The dashboard's short duration (``850 ms``, ``4 min 3 s``), ``-`` for none."""
    return display.duration(seconds) or "-"
