"""Cluster scaling: W2-style drain throughput as a Redis Cluster gets more primaries.

``--workers`` ``convoy_worker`` processes, each serving every queue, drain ``--jobs``
pre-enqueued no-op jobs from 6 queues spread evenly over a private cluster's primaries
(1, 2, then 3; no replicas), and, for reference, from one plain redis-server. The jobs are
queued while the queues are paused and the workers have registered; the clock runs from
resuming the queues until Redis counts the last job processed. Each primary's Redis CPU per
job is reported too: it is what a primary can serve per second that caps one server, and it
falls as 1/primaries when the queues are spread.

``--wait`` measures ``WAIT_REPLICAS = 1`` instead: one producer's ``add_job`` latency and the
drain, with and without it, on a cluster with a replica per primary and on a Sentinel group.

    python -m benchmarks.cluster_scaling [--jobs 20000] [--workers 4] [--repeat 3] [--wait]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = "benchmarks.cluster_settings"
QUEUE_COUNT = 6
PREFIX = "bench"
NOOP_BODY = '{"args":[],"kwargs":{}}'


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spread(primaries: int, count: int = QUEUE_COUNT) -> list[str]:
    """``count`` queue names, as many on each of LocalCluster(primaries)'s slot ranges."""
    from django_convoy.redis_cluster import SLOTS, key_slot

    step, per = SLOTS // primaries, count // primaries
    found: dict[int, list[str]] = {p: [] for p in range(primaries)}
    n = 0
    while any(len(names) < per for names in found.values()):
        name = f"c{n}"
        shard = min(key_slot(f"{{{name}}}") // step, primaries - 1)
        if len(found[shard]) < per:
            found[shard].append(name)
        n += 1
    return [name for names in found.values() for name in names]


@contextmanager
def convoy_at(url: str, queues: list[str], wait: int = 0) -> Iterator[None]:
    """Point this process's convoy at ``url`` (settings as the workers get them)."""
    from django.test.utils import override_settings

    from benchmarks.settings import CONVOY

    convoy = {
        **CONVOY,
        "REDIS_URL": url,
        "QUEUES": {**CONVOY["QUEUES"], **{name: {} for name in queues}},
        "WAIT_REPLICAS": wait,
    }
    with override_settings(CONVOY=convoy):
        yield


class Workers:
    """``count`` convoy_worker processes serving every queue."""

    def __init__(self, url: str, queues: list[str], count: int, concurrency: int, wait: int):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "REDIS_URL": url,
            "CONVOY_BENCH_QUEUES": ",".join(queues),
            "CONVOY_BENCH_WAIT": str(wait),
        }
        command = [sys.executable, os.path.join(ROOT, "manage.py"), "convoy_worker", *queues]
        command += ["--concurrency", str(concurrency), "-v", "0"]
        self.log = tempfile.TemporaryFile()
        self.processes = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
            for _ in range(count)
        ]

    def wait_registered(self, client: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while client.zcard(f"{PREFIX}:{{workers}}:registry") < len(self.processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.log.seek(0)
                raise RuntimeError(f"workers did not start:\n{self.log.read()[-3000:]!r}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def redis_cpu(ports: list[int]) -> dict[int, float]:
    import redis

    out = {}
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
        out[port] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return out


def drain(
    url: str,
    primary_ports: list[int],
    queues: list[str],
    jobs: int,
    workers: int,
    concurrency: int,
    wait: int = 0,
) -> dict[str, Any]:
    """One drain of ``jobs`` no-op jobs, split over ``queues``, by fresh worker processes."""
    from benchmarks.tasks import noop
    from django_convoy import connection, get_queue

    with convoy_at(url, queues, wait):
        client = connection.get_client()
        for port in primary_ports:
            import redis

            with redis.Redis(port=port) as node:
                node.flushall()
        per_queue = jobs // len(queues)
        for name in queues:
            q = get_queue(name)
            q.pause()
            for start in range(0, per_queue, 5000):
                entries = [
                    (f"{name}-{i}", NOOP_BODY) for i in range(start, min(per_queue, start + 5000))
                ]
                try:
                    q.add_encoded(noop.name, entries)
                except Exception as exc:  # NotReplicated: queued on the primary all the same
                    if type(exc).__name__ != "NotReplicated":
                        raise
        pool = Workers(url, queues, workers, concurrency, wait)
        try:
            pool.wait_registered(client)
            cpu_before = redis_cpu(primary_ports)
            started = time.perf_counter()
            for name in queues:
                get_queue(name).resume()
            total = per_queue * len(queues)
            while sum(get_queue(n).stats()["processed_total"] for n in queues) < total:
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            cpu_after = redis_cpu(primary_ports)
        finally:
            pool.stop()
    busiest = max(cpu_after[p] - cpu_before[p] for p in primary_ports)
    return {
        "jobs_per_s": total / seconds,
        "seconds": seconds,
        "busiest_primary_cpu_us_per_job": 1e6 * busiest / total,
        # What the primaries could serve if they, not the workers, were the limit.
        "redis_ceiling_jobs_per_s": total / busiest,
        "redis_cpu_us_per_job": 1e6
        * sum(cpu_after[p] - cpu_before[p] for p in primary_ports)
        / total,
    }


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["jobs_per_s_range"] = [
        min(r["jobs_per_s"] for r in runs),
        max(r["jobs_per_s"] for r in runs),
    ]
    return out


def scaling(options: argparse.Namespace) -> dict[str, Any]:
    from django_convoy.redis_cluster import LocalCluster
    from django_convoy.redis_server import RedisServer

    results: dict[str, Any] = {}
    server = RedisServer().start()
    try:
        queues = spread(1)
        runs = [
            drain(
                server.url,
                [server.port],
                queues,
                options.jobs,
                options.workers,
                options.concurrency,
            )
            for _ in range(options.repeat)
        ]
        results["single server"] = median(runs)
        single = results["single server"]
        progress(
            f"  single server: {single['jobs_per_s']:,.0f} jobs/s, "
            f"{single['busiest_primary_cpu_us_per_job']:.1f} us of Redis CPU per job (ceiling "
            f"{single['redis_ceiling_jobs_per_s']:,.0f} jobs/s)"
        )
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    for primaries in options.primaries:
        cluster = LocalCluster(primaries=primaries, replicas=0).start()
        try:
            queues = spread(primaries)
            ports = cluster.primary_ports()
            runs = [
                drain(
                    cluster.url, ports, queues, options.jobs, options.workers, options.concurrency
                )
                for _ in range(options.repeat)
            ]
        finally:
            cluster.stop()
        key = f"cluster, {primaries} primar{'y' if primaries == 1 else 'ies'}"
        results[key] = median(runs)
        progress(
            f"  {key}: {results[key]['jobs_per_s']:,.0f} jobs/s, busiest primary "
            f"{results[key]['busiest_primary_cpu_us_per_job']:.1f} us of CPU per job (ceiling "
            f"{results[key]['redis_ceiling_jobs_per_s']:,.0f} jobs/s)"
        )
    return results


def add_latency(url: str, queues: list[str], wait: int, count: int = 2000) -> dict[str, float]:
    """One producer's add_job latency (ms), round-robin over the queues."""
    from django_convoy import get_queue

    with convoy_at(url, queues, wait):
        targets = [get_queue(name) for name in queues]
        targets[0].add_job("warm-up")
        times = []
        for i in range(count):
            started = time.perf_counter()
            targets[i % len(targets)].add_job(f"lat-{wait}-{i}")
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


def wait_cost(options: argparse.Namespace) -> dict[str, Any]:
    from django_convoy.redis_cluster import LocalCluster, LocalSentinelGroup

    results: dict[str, Any] = {}
    for kind in ("cluster", "sentinel"):
        servers = (LocalCluster(3, 1) if kind == "cluster" else LocalSentinelGroup(1, 3)).start()
        try:
            queues = spread(3)
            if kind == "cluster":
                ports = servers.primary_ports()
            else:
                ports = [servers.current_primary_port()]
            for wait in (0, 1):
                latency = add_latency(servers.url, queues, wait)
                runs = [
                    drain(
                        servers.url,
                        ports,
                        queues,
                        options.jobs,
                        options.workers,
                        options.concurrency,
                        wait,
                    )
                    for _ in range(options.repeat)
                ]
                key = f"{kind}, WAIT_REPLICAS={wait}"
                results[key] = {**latency, **median(runs)}
                progress(
                    f"  {key}: add_job p50 {latency['p50_ms']:.2f} ms, "
                    f"p99 {latency['p99_ms']:.2f} ms; "
                    f"drain {results[key]['jobs_per_s']:,.0f} jobs/s"
                )
        finally:
            servers.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="per queue, per worker")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--primaries", type=lambda s: [int(p) for p in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument("--wait", action="store_true", help="measure WAIT_REPLICAS instead")
    options = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")  # replaced per run; never used
    import django

    django.setup()
    result = wait_cost(options) if options.wait else scaling(options)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
