"""What a Prometheus scrape of ``convoy/metrics`` costs: ``python -m benchmarks.metrics_scrape``.

Fills a private redis-server with 100 queues (``--queues``) holding 1,000,000 queued jobs between
them (``--jobs``), in three priorities each, with some failed runs (so the counters and
histograms hold data) and 10 workers in the registry; then times ``--requests`` scrapes through
Django's test client, and counts the Redis commands and bytes of one scrape.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import private_redis, setup_django

BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="queued jobs in all")
    parser.add_argument("--requests", type=int, default=20, help="timed scrapes")
    options = parser.parse_args()
    with private_redis() as url:  # the benchmarks' own server, as every benchmark's
        setup_django(url)
        run(options)


def run(options: argparse.Namespace) -> None:
    from django.conf import settings
    from django.test import Client, override_settings

    names = [f"q{i:03d}" for i in range(options.queues)]
    convoy = {
        **settings.CONVOY,
        "QUEUES": {name: {} for name in names},
        "METRICS": {"ENABLED": True},
    }
    with override_settings(CONVOY=convoy):
        started = time.perf_counter()
        client = fill(names, options.jobs)
        memory = client.info("memory")["used_memory_human"]
        print(
            f"{options.queues} queues, {options.jobs:,} queued jobs, filled in "
            f"{time.perf_counter() - started:.1f} s; Redis uses {memory}"
        )
        web = Client(HTTP_HOST="localhost")
        web.get("/convoy/metrics")  # scripts loaded, connections open
        before = calls(client)
        body = web.get("/convoy/metrics").content
        commands = calls(client) - before - 1  # less the INFO of calls() itself
        times = []
        cpu = redis_cpu(client)
        for _ in range(options.requests):
            begun = time.perf_counter()
            response = web.get("/convoy/metrics")
            times.append((time.perf_counter() - begun) * 1000)
            assert response.status_code == 200
        redis_ms = (redis_cpu(client) - cpu) / options.requests * 1000
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(
            f"scrape: median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over "
            f"{options.requests} requests; {len(body):,} bytes, {len(body.splitlines()):,} lines; "
            f"{commands:,} Redis commands (scripts' own included) in 2 round trips, "
            f"{redis_ms:.1f} ms of Redis CPU"
        )


def fill(names: list[str], jobs: int):
    from django_convoy import get_queue
    from django_convoy.store import Fleet
    from django_convoy.testing import drain

    per_queue = jobs // len(names)
    for name in names:
        queue = get_queue(name)
        for priority, start in zip(
            (0, 5, -5), range(0, per_queue, per_queue // 3 + 1), strict=False
        ):
            stop = min(per_queue, start + per_queue // 3 + 1)
            for first in range(start, stop, BATCH):
                queue.add_jobs(range(first, min(stop, first + BATCH)), priority=priority)
        drain(name, max_jobs=20)  # no processor: 20 failed runs, for the histograms
        queue.add_jobs(range(per_queue, per_queue + 20))  # back to per_queue queued
    fleet = Fleet(get_queue(names[0]).key_prefix, get_queue(names[0]).client)
    for i in range(10):
        fleet.heartbeat(f"bench-worker-{i}", {"queues": names, "host": "bench", "pid": i}, 10_000)
    return get_queue(names[0]).client


def redis_cpu(client) -> float:
    found = client.info("cpu")
    return found["used_cpu_user"] + found["used_cpu_sys"]


def calls(client) -> int:
    return sum(stat["calls"] for stat in client.info("commandstats").values())


if __name__ == "__main__":
    main()
