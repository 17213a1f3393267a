"""The I/O-bound job of W2-io, the same for every queue: one Redis round trip of its own.

A real job writes to a database or calls an API; here it sends one ``INCR`` through a redis-py
client of its own (not the queue's), created lazily once per worker process and shared by the
process's threads. The counter is also how the benchmark sees the drain end. No Django here:
Huey's consumer imports this module too (``benchmarks/huey_app.py``).
"""

from __future__ import annotations

import os
import threading
import time

import redis

COUNTER_KEY = "bench:io:done"  # INCR once per job run
LATENCY_KEY = "bench:io:latency"  # "<t0 ns> <started ns>" per W3-io job

_client: redis.Redis | None = None
_client_pid = 0
_lock = threading.Lock()


def job_client() -> redis.Redis:
    """This process's client of the benchmark's server, created on first use."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():  # a forked child makes its own
        with _lock:
            if _client is None or _client_pid != os.getpid():
                _client = redis.Redis.from_url(os.environ["REDIS_URL"])
                _client_pid = os.getpid()
    return _client


def incr() -> None:
    """The job: one round trip, standing in for a database write."""
    job_client().incr(COUNTER_KEY)


def record_start(t0: int) -> None:
    """The W3-io job: note when it started beside when its producer enqueued it (``t0``).

    Both are ``time.monotonic_ns()``: Linux keeps one such clock for every process of the
    machine, so the difference is a true interval (and, unlike ``time.time()``, never steps).
    """
    started = time.monotonic_ns()
    job_client().rpush(LATENCY_KEY, f"{t0} {started}")
