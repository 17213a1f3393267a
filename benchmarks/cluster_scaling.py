"""Cluster scaling: W2-style drain throughput as a Redis Cluster gets more primaries.

``--workers`` ``convoy_worker`` processes, each serving every queue, drain ``--jobs``
pre-enqueued no-op jobs from 6 queues spread evenly over a private cluster's primaries
(1, 2, then 3; no replicas), and, for reference, from one plain redis-server. The jobs are
queued while the queues are paused and the workers have registered; the clock runs from
resuming the queues until Redis counts the last job processed. Each primary's Redis CPU per
job is reported too: it is what a primary can serve per second that caps one server, and it
falls as 1/primaries when the queues are spread.

On a small machine the workers' Python, not Redis, runs out first, so more primaries cannot
show. ``--redis-cpu PERCENT`` models what the question is about, each primary a machine of
its own with Redis the bottleneck: every redis-server gets a cgroup CPU quota of PERCENT of
one core (``cpu_cap.py``), applied only while the clock runs. ``--uncapped-too`` alternates
each capped drain with an uncapped one on the same servers, for reference under the same load.
Whether Redis really set the pace is reported with each capped figure: the least busy
primary's CPU as a share of its quota, and the share of quota periods in which it ran out.

``--wait`` measures ``WAIT_REPLICAS = 1`` instead: one producer's ``add_job`` latency and the
drain, with and without it, on a cluster with a replica per primary and on a Sentinel group.

    python -m benchmarks.cluster_scaling [--jobs 20000] [--workers 4] [--concurrency 4]
        [--repeat 3] [--redis-cpu 5 [--uncapped-too]] [--wait]
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.cpu_cap import CgroupUnavailable, CpuCap, CpuCaps, period_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = "benchmarks.cluster_settings"
QUEUE_COUNT = 6
PREFIX = "bench"
NOOP_BODY = '{"args":[],"kwargs":{}}'
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 0.05  # how often the end of a drain is looked for


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spread(primaries: int, count: int = QUEUE_COUNT) -> list[str]:
    """``count`` queue names, as many on each of LocalCluster(primaries)'s slot ranges."""
    from django_convoy.testing.cluster import SLOTS, key_slot

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

    def cpu_seconds(self) -> float:
        """User plus system CPU the worker processes have used so far (from ``/proc``)."""
        ticks = 0
        for process in self.processes:
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / CLOCK_TICKS

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


@dataclass
class Primaries:
    """What one setup drains from: the URL clients use, the primaries' ports and, with
    ``--redis-cpu``, each primary's cgroup by port."""

    url: str
    ports: list[int]
    caps: dict[int, CpuCap] = field(default_factory=dict)

    def limit(self, percent: float | None) -> None:
        """Hold every primary to ``percent`` of one core (None: no limit)."""
        for cap in self.caps.values():
            if percent is None:
                cap.lift()
            else:
                cap.limit(percent)


@contextmanager
def started(primaries: int, caps: CpuCaps | None) -> Iterator[Primaries]:
    """One plain redis-server (``primaries`` 0) or a cluster of ``primaries``, no replicas.

    With ``caps``, each primary is put in a cgroup of its own, unlimited until a drain limits
    it. The servers are stopped and the groups removed however the block ends.
    """
    from django_convoy.testing.cluster import LocalCluster
    from django_convoy.testing.servers import RedisServer

    servers: RedisServer | LocalCluster
    if primaries == 0:
        servers = RedisServer().start()
        target = Primaries(servers.url, [servers.port])
        pids = {servers.port: servers.process.pid}
    else:
        servers = LocalCluster(primaries=primaries, replicas=0).start()
        target = Primaries(servers.url, servers.primary_ports())
        pids = {port: servers.node(port).process.pid for port in target.ports}
    try:
        if caps is not None:
            target.caps = {port: caps.new(pid) for port, pid in pids.items()}
        yield target
    finally:
        servers.stop()
        if isinstance(servers, RedisServer):
            shutil.rmtree(servers.directory, ignore_errors=True)
        for cap in target.caps.values():
            cap.remove()


def redis_cpu(ports: list[int]) -> dict[int, float]:
    import redis

    out = {}
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
        out[port] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return out


def processed(client: Any, queues: list[str]) -> int:
    """How many jobs of ``queues`` Redis has counted processed.

    One pipelined HGET per queue: calling the stats script for every queue 20 times a second
    would itself take a share of a capped primary's quota, and a larger share of one primary's
    than of three.
    """
    from django_convoy import get_queue

    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.hget(get_queue(name).keys.stats, "processed")
    return sum(int(count or 0) for count in pipe.execute())


def snapshot(target: Primaries, pool: Workers) -> dict[str, Any]:
    """The counters a drain's figures are differences of."""
    return {
        "redis": redis_cpu(target.ports),
        "throttling": {port: cap.throttling() for port, cap in target.caps.items()},
        "workers": pool.cpu_seconds(),
    }


def drain(
    target: Primaries,
    queues: list[str],
    options: argparse.Namespace,
    wait: int = 0,
    cap: float | None = None,
) -> dict[str, Any]:
    """One drain of ``options.jobs`` no-op jobs, split over ``queues``, by fresh worker
    processes; with ``cap``, every primary is held to ``cap`` % of one core while it runs."""
    import redis

    from benchmarks.tasks import noop
    from django_convoy import connection, get_queue

    with convoy_at(target.url, queues, wait):
        client = connection.get_client()
        for port in target.ports:
            with redis.Redis(port=port) as node:
                node.flushall()
        per_queue = options.jobs // len(queues)
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
        total = per_queue * len(queues)
        pool = Workers(target.url, queues, options.workers, options.concurrency, wait)
        try:
            pool.wait_registered(client)
            # Only the drain is capped: queueing 20,000 jobs would take minutes at a few %.
            if cap is not None:
                target.limit(cap)
            try:
                before = snapshot(target, pool)
                started_at = time.perf_counter()
                for name in queues:
                    get_queue(name).resume()
                while processed(client, queues) < total:
                    time.sleep(POLL_SECONDS)
                seconds = time.perf_counter() - started_at
                after = snapshot(target, pool)
            finally:
                if cap is not None:
                    target.limit(None)
        finally:
            pool.stop()
    return figures(before, after, seconds, total, cap)


def figures(
    before: dict[str, Any], after: dict[str, Any], seconds: float, total: int, cap: float | None
) -> dict[str, float]:
    """One drain's rates and costs from the counters on either side of it."""
    used = {port: after["redis"][port] - before["redis"][port] for port in before["redis"]}
    busiest = max(used.values())
    worker_cpu = after["workers"] - before["workers"]
    out = {
        "jobs_per_s": total / seconds,
        "seconds": seconds,
        "busiest_primary_cpu_us_per_job": 1e6 * busiest / total,
        # What the primaries could serve if they, not the workers, were the limit.
        "redis_ceiling_jobs_per_s": total / busiest,
        "redis_cpu_us_per_job": 1e6 * sum(used.values()) / total,
        # The least busy primary's CPU over the busiest's: 1.0 when the work is spread evenly.
        "primary_balance": min(used.values()) / busiest,
        "worker_cpu_us_per_job": 1e6 * worker_cpu / total,
        "worker_cores": worker_cpu / seconds,
    }
    if cap is not None:
        # Whether Redis set the pace: the least busy primary's CPU as a share of its quota,
        # and the share of quota periods in which it ran out (both near 1.0 if so).
        out["least_primary_use_of_cap"] = min(used.values()) / seconds / (cap / 100)
        throttled = []
        for port, (periods, hit, _) in after["throttling"].items():
            periods_before, hit_before, _ = before["throttling"][port]
            throttled.append((hit - hit_before) / max(1, periods - periods_before))
        out["least_primary_throttled_periods"] = min(throttled)
    return out


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    out["jobs_per_s_range"] = [
        min(r["jobs_per_s"] for r in runs),
        max(r["jobs_per_s"] for r in runs),
    ]
    return out


def setup_name(primaries: int) -> str:
    if primaries == 0:
        return "single server"
    return f"cluster, {primaries} primar{'y' if primaries == 1 else 'ies'}"


def result_key(primaries: int, cap: float | None, options: argparse.Namespace) -> str:
    return setup_name(primaries) + ("" if cap == options.redis_cpu else ", uncapped")


def describe(key: str, result: dict[str, Any]) -> str:
    low, high = result["jobs_per_s_range"]
    line = (
        f"  {key}: {result['jobs_per_s']:,.0f} jobs/s ({low:,.0f}-{high:,.0f}); busiest primary "
        f"{result['busiest_primary_cpu_us_per_job']:.1f} us of CPU per job, balance "
        f"{result['primary_balance']:.2f}; workers {result['worker_cores']:.2f} cores, "
        f"{result['worker_cpu_us_per_job']:.0f} us per job"
    )
    if "least_primary_use_of_cap" in result:
        line += (
            f"; least busy primary used {result['least_primary_use_of_cap']:.0%} of its cap, "
            f"throttled in {result['least_primary_throttled_periods']:.0%} of periods"
        )
    return line + f"; load {result['load_average'][0]:.1f}-{result['load_average'][1]:.1f}"


def scaling(options: argparse.Namespace, caps: CpuCaps | None) -> dict[str, Any]:
    """Drain every setup ``options.repeat`` times, capped (and uncapped if asked) in turn.

    All the setups run side by side and take turns, round after round, so that the load other
    work puts on the machine, which drifts over minutes, falls on each of them alike.
    """
    setups = [0, *options.primaries]
    caps_per_drain = [options.redis_cpu, *([None] if options.uncapped_too else [])]
    runs: dict[tuple[int, float | None], list[dict[str, Any]]] = {
        (primaries, cap): [] for primaries in setups for cap in caps_per_drain
    }
    with ExitStack() as stack:
        targets = {primaries: stack.enter_context(started(primaries, caps)) for primaries in setups}
        for round_ in range(options.repeat):
            for primaries, target in targets.items():
                for cap in caps_per_drain:
                    load = os.getloadavg()[0]
                    run = drain(target, spread(max(1, primaries)), options, cap=cap)
                    runs[primaries, cap].append({**run, "load_average": load})
                    progress(
                        f"  round {round_ + 1}, {result_key(primaries, cap, options)}: "
                        f"{run['jobs_per_s']:,.0f} jobs/s (load {load:.1f})"
                    )
    results: dict[str, Any] = {}
    for (primaries, cap), drains in runs.items():
        key = result_key(primaries, cap, options)
        loads = [run.pop("load_average") for run in drains]
        results[key] = {**median(drains), "load_average": [min(loads), max(loads)]}
    progress("medians:")
    for key, result in results.items():
        progress(describe(key, result))
    return results


def add_latency(url: str, queues: list[str], wait: int, count: int = 2000) -> dict[str, float]:
    """One producer's add_job latency (ms), round-robin over the queues."""
    from django_convoy import get_queue

    with convoy_at(url, queues, wait):
        targets = [get_queue(name) for name in queues]
        targets[0].add_job("warm-up")
        times = []
        for i in range(count):
            started_at = time.perf_counter()
            targets[i % len(targets)].add_job(f"lat-{wait}-{i}")
            times.append((time.perf_counter() - started_at) * 1000)
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


def wait_cost(options: argparse.Namespace) -> dict[str, Any]:
    from django_convoy.testing.cluster import LocalCluster
    from django_convoy.testing.sentinel import LocalSentinelGroup

    results: dict[str, Any] = {}
    for kind in ("cluster", "sentinel"):
        servers = (LocalCluster(3, 1) if kind == "cluster" else LocalSentinelGroup(1, 3)).start()
        try:
            queues = spread(3)
            if kind == "cluster":
                ports = servers.primary_ports()
            else:
                ports = [servers.current_primary_port()]
            target = Primaries(servers.url, ports)
            for wait in (0, 1):
                latency = add_latency(servers.url, queues, wait)
                runs = [drain(target, queues, options, wait) for _ in range(options.repeat)]
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


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # Ctrl-C unwinds through the finally blocks that stop the servers and remove the cgroups;
    # a plain kill's default action would leave both behind, so make it unwind too.
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="per queue, per worker")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--primaries", type=lambda s: [int(p) for p in s.split(",")], default=[1, 2, 3]
    )
    parser.add_argument(
        "--redis-cpu",
        type=float,
        metavar="PERCENT",
        help="hold each redis-server to PERCENT of one core while a drain runs (cgroup quota)",
    )
    parser.add_argument(
        "--uncapped-too",
        action="store_true",
        help="with --redis-cpu: alternate every capped drain with an uncapped one",
    )
    parser.add_argument("--wait", action="store_true", help="measure WAIT_REPLICAS instead")
    options = parser.parse_args()
    if options.redis_cpu is not None and options.wait:
        parser.error("--redis-cpu measures scaling; it does not go with --wait")
    if options.uncapped_too and options.redis_cpu is None:
        parser.error("--uncapped-too needs --redis-cpu")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    caps = None
    if options.redis_cpu is not None:
        try:
            period, quota = period_for(options.redis_cpu)
            caps = CpuCaps()
        except (ValueError, CgroupUnavailable) as exc:
            parser.exit(2, f"{parser.prog}: {exc}\n")
        progress(
            f"each primary capped while draining: {quota} us of CPU every {period} us "
            f"({options.redis_cpu:g}% of one core), {caps.hierarchy.describe()}"
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")  # replaced per run; never used
    import django

    django.setup()
    try:
        result = wait_cost(options) if options.wait else scaling(options, caps)
    finally:
        if caps is not None:
            caps.close()
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
