"""W5: Redis memory per queued job (20-byte payload) and the resident memory of a worker.

Memory per job is the growth of ``used_memory`` over 20,000 queued jobs, with each key's
share from ``MEMORY USAGE``. Ids are 12 bytes (``job:00000001``); the payload is 20 bytes of
JSON. The worker's figure is the resident set of an idle ``convoy_worker`` process.
Target: under 300 bytes per queued job.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import (
    WorkerProcess,
    client_for,
    flush,
    progress,
    script_main,
    summarise,
)

PAYLOAD = "x" * 18  # 20 bytes once JSON-encoded, quotes included


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=20_000)


def once(url: str, jobs: int) -> dict[str, Any]:
    """Queue ``jobs`` jobs into an empty server and measure what they take."""
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("bench")
    queue.add_job("warm-up", PAYLOAD)  # creates the queue's keys and loads the script
    queue.delete_job("warm-up")
    before = int(client.info("memory")["used_memory"])
    queue.add_jobs([(f"job:{i:08d}", PAYLOAD) for i in range(jobs)])
    after = int(client.info("memory")["used_memory"])
    shares = {
        field: int(client.memory_usage(key, samples=0) or 0) / jobs
        for field, key in queue.keys._asdict().items()
        if client.exists(key)
    }
    return {
        "bytes_per_job": (after - before) / jobs,
        **{f"{k}_bytes": v for k, v in shares.items()},
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Memory per job (``options.repeat`` times), then an idle worker's resident set."""
    from django_convoy import get_queue

    result = summarise([once(url, options.jobs) for _ in range(options.repeat)])
    client = client_for(url)
    queue = get_queue("bench")
    result["jobs_encoding"] = client.object("encoding", queue.keys.jobs)
    queue.pause()  # the worker starts and idles, leaving the jobs queued
    with WorkerProcess(url, "bench") as worker:
        worker.wait_registered(client)
        time.sleep(1)
        result["worker_idle_rss_kb"] = worker.memory_kb("VmRSS")
    shares = ", ".join(
        f"{key.removesuffix('_bytes')} {value:.0f}"
        for key, value in result.items()
        if key.endswith("_bytes") and key != "bytes_per_job"
    )
    progress(
        f"  W5: {result['bytes_per_job']:.0f} bytes per queued job ({shares}); "
        f"idle worker {result['worker_idle_rss_kb'] / 1024:.1f} MiB"
    )
    return result


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
