"""How the dashboard presents values: durations in words, the throughput chart's geometry,
payloads as JSON.

Shared by the templates (through ``templatetags/convoy_admin.py``) and the JSON endpoint, so
that the live refresh shows exactly what a page load shows.
"""

from __future__ import annotations

import json
from typing import Any

from .statistics import QueueStats, WorkerStats

CHART_WIDTH = 240
CHART_HEIGHT = 48


def duration(seconds: float | None) -> str:
    """Return a short human duration: '850 ms', '12.3 s', '4 min 3 s', '2 h 5 min', '3 d 4 h'."""
    if seconds is None:
        return ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        large, small = f"{whole // 60} min", f"{whole % 60} s"
    elif whole < 86400:
        large, small = f"{whole // 3600} h", f"{whole % 3600 // 60} min"
    else:
        large, small = f"{whole // 86400} d", f"{whole % 86400 // 3600} h"
    return large if small.startswith("0 ") else f"{large} {small}"


def pretty_json(value: Any) -> str:
    """Return ``value`` as indented JSON; a payload nested deeper than indenting can recurse
    (hundreds of levels: Python's indenting encoder spends frames per level) as compact JSON."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:
        return "(nested too deep to show)"


def chart(queue: QueueStats) -> dict[str, str]:
    """Return the SVG polyline points of a queue's processed and failed jobs per minute, and
    the text of the chart's scale (the busiest minute: its top; the bottom is 0) and legend.

    Both lines share one scale (the busiest minute), so a failure spike reads against the
    processed line; an idle hour is a flat line along the bottom.
    """
    peak = max(1, *queue.processed_per_minute, *queue.failed_per_minute)
    processed, failed = sum(queue.processed_per_minute), sum(queue.failed_per_minute)
    return {
        "processed": _points(queue.processed_per_minute, peak),
        "failed": _points(queue.failed_per_minute, peak),
        "title": f"{queue.name}, last hour: {processed} processed, {failed} failed "
        f"(busiest minute: {peak})",
        # The axis and the legend, as text beside the drawing.
        "peak": f"{peak:,}/min",
        "processed_sum": f"{processed:,} processed",
        "failed_sum": f"{failed:,} failed",
    }


def _points(series: list[int], peak: int) -> str:
    step = CHART_WIDTH / max(1, len(series) - 1)
    top, usable = 2, CHART_HEIGHT - 4  # keep the 2 px stroke inside the box
    return " ".join(
        f"{i * step:.1f},{top + usable - usable * count / peak:.1f}"
        for i, count in enumerate(series)
    )


def worker_row(worker: WorkerStats) -> dict[str, str]:
    """Return the cells of a worker's row in the workers table, as text."""
    if not worker.alive:
        status = "gone"
    elif worker.stopping:
        status = "stopping"
    else:
        status = "online"
    return {
        "id": worker.id,
        "status": status,
        "host": worker.host or "—",
        "pid": "—" if worker.pid is None else str(worker.pid),
        "queues": ", ".join(worker.queues) or "—",
        "heartbeat": f"{duration(worker.heartbeat_age)} ago",
        "current": _running(worker),
        # A worker gone for a while has lost its description with its hash: only its id is left.
        "done": f"{worker.processed} processed, {worker.failed} failed" if worker.host else "—",
    }


def _running(worker: WorkerStats) -> str:
    """What Redis says the worker runs now: the longest running first, the rest counted."""
    if not worker.running:
        return "—"
    listed = ", ".join(
        f"{job['queue']}: {job['id']} ({duration(job['running_for'])})" for job in worker.current
    )
    more = worker.running - len(worker.current)
    return f"{worker.running} running: {listed}" + (f" and {more} more" if more else "")
