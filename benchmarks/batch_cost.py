"""What the hot path costs Redis per job: ``python -m benchmarks.batch_cost [--batch 32]``.

Queues ``--jobs`` no-op jobs on a private redis-server, then claims ``--batch`` runs and acks
them with ``ack_claim`` (which claims the next batch) until the queue is empty, as a busy
worker's reporter does, without a worker's threads in the way: so the commands per job are
exact (``INFO commandstats``, the scripts' own included) and Redis's CPU per job is its own.
Run it in two checkouts to see what a change to the scripts costs.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import private_redis, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=32_000)
    parser.add_argument("--batch", type=int, default=32, help="runs per claim and per ack")
    options = parser.parse_args()
    with private_redis() as url:  # the benchmarks' own server, as every benchmark's
        setup_django(url)
        run(options.jobs, options.batch)


def run(jobs: int, size: int) -> None:
    from django_convoy import get_queue

    queue = get_queue("bench")
    for first in range(0, jobs, 1000):
        queue.add_jobs(range(first, min(jobs, first + 1000)))
    calls, cpu = _counters(queue.client)
    started = time.perf_counter()
    batch, done = queue.claim(size, "bench-worker"), 0
    while batch.runs:
        acks, batch = queue.ack_and_claim([(r.id, r.token) for r in batch.runs], size, "bench")
        done += len(acks)
    elapsed = time.perf_counter() - started
    calls_after, cpu_after = _counters(queue.client)
    by_command = {name: (count - calls.get(name, 0)) / done for name, count in calls_after.items()}
    total = sum(by_command.values()) - 2 / done  # less the two INFOs of _counters
    print(
        f"{done:,} jobs in batches of {size}: {total:.3f} Redis commands per job, "
        f"Redis CPU {(cpu_after - cpu) / done * 1e6:.1f} us per job, {done / elapsed:,.0f} jobs/s"
    )
    print(
        "  "
        + ", ".join(
            f"{name} {n:.3f}"
            for name, n in sorted(by_command.items(), key=lambda kv: -kv[1])
            if n >= 0.001
        )
    )


def _counters(client) -> tuple[dict[str, int], float]:
    stats, cpu = client.info("commandstats"), client.info("cpu")
    calls = {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in stats.items()}
    return calls, cpu["used_cpu_user"] + cpu["used_cpu_sys"]


if __name__ == "__main__":
    main()
