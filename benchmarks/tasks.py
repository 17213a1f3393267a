"""The jobs the benchmarks run: no-ops, and probes that record when they started.

The probes write to plain Redis lists of the benchmark's private server with a client of
their own, after taking their timestamps, so that recording costs the measurement nothing.
Times are ``time.monotonic_ns()``: one system-wide clock on Linux, shared by the producer
and the worker processes, so start minus enqueue is a true interval.
"""

import os
import random
import time

import redis

from benchmarks import io_job
from django_convoy import convoy_processor, convoy_task, current_job

LATENCY_KEY = "bench:latency"  # "<t0 ns> <started ns>" per job
RUNS_KEY = "bench:runs"  # "<id> <token> <started ns> <ended ns>" per run
STARTS_KEY = "bench:starts"  # "<started ns> <tag>" per run (flow_control.py)

_recorder: redis.Redis | None = None


def recorder() -> redis.Redis:
    """A client of the benchmark's server, separate from convoy's (created on first use)."""
    global _recorder
    if _recorder is None:
        _recorder = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _recorder


@convoy_task(queue="bench")
def noop() -> None:
    """Do nothing: what W2 drains."""


@convoy_processor("bench")
def noop_plain(job_id: str, payload: object) -> None:
    """Do nothing with a plain ``add_job`` job (W1, W1b and W5 add them)."""


@convoy_processor("latency")
def latency_probe(job_id: str, payload: dict) -> None:
    """Record when this job started against when its producer called ``add_job`` (W3)."""
    started = time.monotonic_ns()
    recorder().rpush(LATENCY_KEY, f"{payload['t0']} {started}")


@convoy_task(queue="unique", job_id=lambda key: f"u-{key}")
def contended(key: int) -> None:
    """Hold the id for up to 2 ms and record the run's interval, to find overlaps (W4)."""
    job = current_job()
    started = time.monotonic_ns()
    time.sleep(random.uniform(0, 0.002))
    ended = time.monotonic_ns()
    recorder().rpush(RUNS_KEY, f"{job.id} {job.token} {started} {ended}")


@convoy_task(queue="bench")
def io_incr(n: int) -> None:
    """W2-io and W1-io: one INCR through the job's own client (``benchmarks/io_job.py``)."""
    io_job.incr()


@convoy_task(queue="latency")
def io_latency(t0: int) -> None:
    """W3-io: record when this job started against ``t0``, when it was enqueued."""
    io_job.record_start(t0)


@convoy_task(queue="flow-rate")
def rate_probe() -> None:
    """Record when this run started (flow_control.py: RATE_LIMIT)."""
    recorder().rpush(STARTS_KEY, f"{time.monotonic_ns()} -")


@convoy_task(queue="flow-groups")
def group_noop() -> None:
    """Do nothing, in a queue with GROUP_CONCURRENCY (flow_control.py)."""


@convoy_task(queue="flow-groups")
def group_io_incr(n: int) -> None:
    """W2-io's job (one INCR), in a queue with GROUP_CONCURRENCY (flow_control.py)."""
    io_job.incr()


@convoy_task(queue="flow-groups")
def tenant_probe(tenant: str, n: int) -> None:
    """Record when this run of ``tenant`` started (flow_control.py: fairness)."""
    recorder().rpush(STARTS_KEY, f"{time.monotonic_ns()} {tenant}")
