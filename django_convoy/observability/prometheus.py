"""The Prometheus metrics: one collector that reads the whole fleet from Redis at each scrape.

Every number comes from Redis (``get_statistics()``: the queues' counts, the counters and
histograms the scripts keep, the workers registry), so any web process serves the same figures
and none keeps a registry of its own. The metric names and labels are a contract
(docs/metrics.rst).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from ..dashboard.statistics import QueueStats, Statistics, get_statistics
from ..store.counters import RECOVERY_ACTIONS, Histogram

STATES = ("queued", "processing", "jammed", "scheduled", "failed")


class ConvoyCollector:
    """A prometheus-client collector of every configured queue and the workers serving them."""

    def __init__(self, statistics: Statistics | None = None):
        self.statistics = statistics  # None: read at each collect()

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (prometheus-client calls this at each scrape)."""
        found = self.statistics or get_statistics()
        queues = found.queues
        jobs = GaugeMetricFamily("convoy_jobs", "Jobs in each state.", labels=["queue", "state"])
        oldest = GaugeMetricFamily(
            "convoy_queue_oldest_seconds",
            "Age of the oldest queued job (0 when none is queued).",
            labels=["queue"],
        )
        for queue in queues:
            for state in STATES:
                jobs.add_metric([queue.name, state], getattr(queue, state))
            oldest.add_metric([queue.name], queue.oldest_seconds or 0.0)
        yield jobs
        yield oldest
        yield _counter(
            "convoy_jobs_processed", "Runs that succeeded.", queues, lambda q: q.processed_total
        )
        yield _counter(
            "convoy_jobs_failed", "Jobs that failed for good.", queues, lambda q: q.failed_total
        )
        yield _counter(
            "convoy_jobs_retried",
            "Runs that failed and were scheduled for a retry.",
            queues,
            lambda q: q.counters.retried,
        )
        recovered = CounterMetricFamily(
            "convoy_jobs_recovered",
            "Jammed runs the jam guard recovered, by what it did.",
            labels=["queue", "action"],
        )
        adds = CounterMetricFamily(
            "convoy_adds",
            "Adds of a job id: added, or a duplicate of a live job.",
            labels=["queue", "result"],
        )
        for queue in queues:
            for action in RECOVERY_ACTIONS:
                recovered.add_metric([queue.name, action], queue.counters.recovered[action])
            adds.add_metric([queue.name, "added"], queue.counters.added)
            adds.add_metric([queue.name, "duplicate"], queue.counters.duplicate)
        yield recovered
        yield adds
        yield _counter(
            "convoy_stale_writes_refused",
            "Writes of a run that no longer held its job, refused (fencing).",
            queues,
            lambda q: q.counters.stale_writes_refused,
        )
        yield _histogram(
            "convoy_job_duration_seconds",
            "From a run's start to its outcome in Redis (Redis's clock).",
            queues,
            lambda q: q.counters.duration,
        )
        yield _histogram(
            "convoy_job_wait_seconds",
            "From when a job could first run (its add, or its due time) to its first run's start.",
            queues,
            lambda q: q.counters.wait,
        )
        workers = GaugeMetricFamily(
            "convoy_workers", "Workers alive serving the queue.", labels=["queue"]
        )
        for queue in queues:
            alive = sum(1 for w in found.workers if w.alive and queue.name in w.queues)
            workers.add_metric([queue.name], alive)
        yield workers


def _counter(name: str, documentation: str, queues: list[QueueStats], value: Any) -> Any:
    family = CounterMetricFamily(name, documentation, labels=["queue"])
    for queue in queues:
        family.add_metric([queue.name], value(queue))
    return family


def _histogram(name: str, documentation: str, queues: list[QueueStats], of: Any) -> Any:
    family = HistogramMetricFamily(name, documentation, labels=["queue"])
    for queue in queues:
        histogram: Histogram = of(queue)
        buckets = [(_le(bound), count) for bound, count in histogram.buckets]
        buckets.append(("+Inf", histogram.count))
        family.add_metric([queue.name], buckets, sum_value=histogram.sum)
    return family


def _le(seconds: float) -> str:
    return f"{seconds:g}"


def registry(statistics: Statistics | None = None) -> CollectorRegistry:
    """A registry holding convoy's collector alone (what ``convoy/metrics`` serves)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(ConvoyCollector(statistics))
    return found
