"""W2: one ``convoy_worker`` process (threads) drains 20,000 pre-enqueued no-op jobs.

The jobs are queued while the queue is paused and the worker has started and sent its first
heartbeat; the clock runs from resuming the queue until Redis counts the last job processed, so
neither Django's start-up nor the worker's shutdown is timed. Target: twice the best peer
(Huey, 6,527 jobs/s) scaled by this run's PING loop against the 8,441 calls/s of the peer
run; round trips per job at most 2 unbatched (concurrency 1), well under 1 batched.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from benchmarks.common import (
    BEST_PEER_DRAIN_PER_S,
    PEER_PING_PER_S,
    WorkerProcess,
    client_for,
    command_calls,
    flush,
    ping_loop,
    progress,
    redis_cpu_seconds,
    redis_memory,
    round_trips,
    script_main,
    summarise,
)

POLL_SECONDS = 0.002


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--concurrency",
        default="default,16",
        help="comma-separated worker concurrencies; 'default' is the queue's CONCURRENCY",
    )
    parser.add_argument(
        "--verbosity", type=int, default=0, help="the worker's (1 logs every job at INFO)"
    )


def drain(url: str, jobs: int, concurrency: int | None, verbosity: int = 0) -> dict[str, Any]:
    """One drain of ``jobs`` no-op task jobs by a fresh worker process."""
    from benchmarks.tasks import noop
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("bench")
    queue.pause()
    body = '{"args":[],"kwargs":{}}'
    queue.add_encoded(noop.name, [(f"w2-{i}", body) for i in range(jobs)])
    with WorkerProcess(url, "bench", concurrency, verbosity) as worker:
        worker.wait_registered(client)
        ping_before = ping_loop(url, 2000)
        cpu_before, redis_cpu_before = worker.cpu_seconds(), redis_cpu_seconds(client)
        client.config_resetstat()
        started = time.perf_counter()
        # resume() by hand: DEL is subtracted below, RPUSH is a script command (not counted).
        client.delete(queue.keys.paused)
        client.rpush(queue.keys.wake, "1")
        while int(client.hget(queue.keys.stats, "processed") or 0) < jobs:  # HGET: not counted
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        trips = round_trips(command_calls(client), Counter({"del": 1}))
        cpu = worker.cpu_seconds() - cpu_before
        redis_cpu = redis_cpu_seconds(client) - redis_cpu_before
        rss_kb = worker.memory_kb()
        memory = redis_memory(client)
        left = queue.stats()
        ping = (ping_before + ping_loop(url, 2000)) / 2  # the yardstick, either side of the drain
    if left["queued"] or left["processing"] or left["failed"]:
        raise RuntimeError(f"W2 did not end empty: {left}")
    rate = jobs / seconds
    target = 2 * BEST_PEER_DRAIN_PER_S * ping / PEER_PING_PER_S
    return {
        "jobs_per_s": rate,
        "ping_per_s": ping,
        "target_per_s": target,
        "vs_target": rate / target,
        "round_trips_per_job": trips / jobs,
        "worker_cpu_percent": 100 * cpu / seconds,
        "worker_cpu_us_per_job": 1e6 * cpu / jobs,
        "redis_cpu_us_per_job": 1e6 * redis_cpu / jobs,
        "worker_peak_rss_kb": rss_kb,
        "redis_peak_bytes": memory["peak"],
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """For each concurrency, ``options.repeat`` drains; medians per concurrency."""
    results = {}
    for name in options.concurrency.split(","):
        concurrency = None if name == "default" else int(name)
        runs = []
        for _ in range(options.repeat):
            runs.append(drain(url, options.jobs, concurrency, options.verbosity))
            last = runs[-1]
            progress(
                f"  W2 concurrency {name}: {last['jobs_per_s']:,.0f} jobs/s "
                f"({last['vs_target']:.0%} of target {last['target_per_s']:,.0f}), "
                f"{last['round_trips_per_job']:.3f} round trips/job"
            )
        summary = summarise(runs)
        # The PING loop runs in this process, apart from the worker: set the medians against
        # each other rather than trust any one run's pair.
        summary["vs_target"] = summary["jobs_per_s"] / summary["target_per_s"]
        results[name] = summary
    return results


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
