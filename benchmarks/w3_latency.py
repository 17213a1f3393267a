"""W3: one idle worker; 2,000 jobs at 200 jobs/s; enqueue-to-start latency and idle CPU.

Latency runs from just before the producer's ``add_job`` call (so it includes that round
trip) to the first line of the job, both read from ``time.monotonic_ns()``, one clock for
every process on the machine; ``after_add`` is the part after ``add_job`` returned. The idle
worker's CPU is measured over a quiet stretch before the jobs come (/proc counts it in 10 ms
ticks). Targets: p50 <= 0.6 ms, p99 < 1.5 ms, idle CPU < 1%.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import (
    WorkerProcess,
    client_for,
    flush,
    percentile,
    ping_loop,
    progress,
    redis_memory,
    script_main,
    summarise,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs per second")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the queue's")


def once(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """One worker, an idle stretch, then the paced jobs."""
    from benchmarks.tasks import LATENCY_KEY
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("latency")
    with WorkerProcess(url, "latency", options.concurrency) as worker:
        worker.wait_registered(client)
        time.sleep(0.5)  # let start-up work (first claim, first jam guard round) pass
        cpu_before, began = worker.cpu_seconds(), time.monotonic()
        time.sleep(options.idle)
        idle_cpu = 100 * (worker.cpu_seconds() - cpu_before) / (time.monotonic() - began)
        idle_rss_kb = worker.memory_kb("VmRSS")
        ping = ping_loop(url, 2000)
        period = 1 / options.rate
        due = time.monotonic()
        returned = {}  # t0 -> when add_job returned: splits the latency at the add
        for i in range(options.jobs):
            due += period
            time.sleep(max(0.0, due - time.monotonic()))
            t0 = time.monotonic_ns()
            queue.add_job(f"w3-{i}", {"t0": t0})
            returned[t0] = time.monotonic_ns()
        deadline = time.monotonic() + 30
        while client.llen(LATENCY_KEY) < options.jobs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"W3: jobs did not all start\n{worker.output()}")
            time.sleep(0.01)
        peak_rss_kb = worker.memory_kb()
    pairs = [tuple(map(int, entry.split())) for entry in client.lrange(LATENCY_KEY, 0, -1)]
    samples = [(started - t0) / 1e6 for t0, started in pairs]
    after_add = [(started - returned[t0]) / 1e6 for t0, started in pairs]
    return {
        "p50_ms": percentile(samples, 50),
        "p90_ms": percentile(samples, 90),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        "after_add_p50_ms": percentile(after_add, 50),
        "after_add_p99_ms": percentile(after_add, 99),
        "idle_cpu_percent": idle_cpu,
        "ping_us": 1e6 / ping,
        "worker_idle_rss_kb": idle_rss_kb,
        "worker_peak_rss_kb": peak_rss_kb,
        "redis_peak_bytes": redis_memory(client)["peak"],
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """``options.repeat`` runs; the median of each percentile."""
    runs = []
    for _ in range(options.repeat):
        runs.append(once(url, options))
        last = runs[-1]
        progress(
            f"  W3: p50 {last['p50_ms']:.3f} ms, p99 {last['p99_ms']:.3f} ms, "
            f"max {last['max_ms']:.2f} ms; idle CPU {last['idle_cpu_percent']:.2f}%"
        )
    return summarise(runs)


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
