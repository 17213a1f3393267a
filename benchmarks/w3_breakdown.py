"""W3 taken apart: where an idle worker's enqueue-to-start latency goes, step by step.

The worker runs in a process of its own with timestamps (``time.monotonic_ns()``, one clock
for every process) taken in memory at each step of the idle path, and written to the server
in the background so that recording costs the path nothing:

  to_wake    producer calls ``add_job`` -> the worker's BLPOP on the wake list returns
  to_claim   BLPOP returned -> the claim script is sent
  claim      the claim's round trip
  handoff    claim returned -> an executor thread starts the run
  to_code    the executor starts the run -> the job's first line

    python -m benchmarks.w3_breakdown [--jobs 1000] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.common import ROOT, client_for, flush, percentile, progress, script_main

TRACE_KEY = "bench:trace"  # id -> "woke claim_sent claim_back executed" (ns)
STEPS = ("to_wake", "to_claim", "claim", "handoff", "to_code", "total")


def traced_worker() -> None:
    """Run a worker on the latency queue with its idle path instrumented (the child process)."""
    import django

    django.setup()
    import redis

    from django_convoy import queue as queue_module
    from django_convoy import worker as worker_module

    recorder = redis.Redis.from_url(os.environ["REDIS_URL"])
    woke, claims, starts = [0], {}, {}
    blpop, claim, execute = redis.Redis.blpop, queue_module.Queue.claim, worker_module.execute

    def timed_blpop(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = blpop(self, *args, **kwargs)
        if reply is not None:
            woke[0] = time.monotonic_ns()
        return reply

    def timed_claim(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent = time.monotonic_ns()
        batch = claim(self, *args, **kwargs)
        back = time.monotonic_ns()
        for job in batch.jobs:
            claims[job.id] = (woke[0], sent, back)
        return batch

    def timed_execute(job: Any, worker_id: str) -> Any:
        starts[job.id] = time.monotonic_ns()
        return execute(job, worker_id)

    def write_out() -> None:
        while True:
            time.sleep(0.2)
            # Jobs the reporter claimed along with an ack took another path: not traced.
            ready = {
                i: " ".join(map(str, (*claims[i], starts[i]))) for i in list(starts) if i in claims
            }
            if ready:
                recorder.hset(TRACE_KEY, mapping=ready)

    redis.Redis.blpop = timed_blpop
    queue_module.Queue.claim = timed_claim
    worker_module.execute = timed_execute
    threading.Thread(target=write_out, daemon=True).start()
    worker_module.Worker(["latency"]).run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs per second")


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """One traced worker, paced jobs, and the percentiles of each step (us)."""
    from benchmarks.tasks import LATENCY_KEY
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    env = {**os.environ, "REDIS_URL": url}
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.w3_breakdown", "--worker"], env=env)
    try:
        while not client.zcard("bench:{workers}:registry"):
            time.sleep(0.02)
        time.sleep(0.5)
        queue, period, due = get_queue("latency"), 1 / options.rate, time.monotonic()
        t0s = {}  # job id -> when its add_job was called
        for i in range(options.jobs):
            due += period
            time.sleep(max(0.0, due - time.monotonic()))
            t0s[f"w3-{i}"] = t0 = time.monotonic_ns()
            queue.add_job(f"w3-{i}", {"t0": t0})
        deadline = time.monotonic() + 30
        while client.llen(LATENCY_KEY) < options.jobs and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the last traces' write-out
    finally:
        child.terminate()
        child.wait(timeout=30)
    started = dict(tuple(map(int, e.split())) for e in client.lrange(LATENCY_KEY, 0, -1))
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    for job_id, trace in client.hgetall(TRACE_KEY).items():
        t0 = t0s[job_id]
        marks = (t0, *map(int, trace.split()), started[t0])
        for step, begin, end in zip(STEPS, marks, marks[1:], strict=False):
            steps[step].append((end - begin) / 1000)
        steps["total"].append((marks[-1] - t0) / 1000)
    result: dict[str, Any] = {"traced": len(steps["total"]), "jobs": options.jobs}
    for step, values in steps.items():
        result |= {f"{step}_{p}_us": percentile(values, p) for p in (50, 99) if values}
    progress(
        f"  W3 steps of {result['traced']} jobs claimed from idle, p50 (p99) us: "
        + ", ".join(
            f"{step} {statistics.median(v):.0f} ({percentile(v, 99):.0f})"
            for step, v in steps.items()
            if v
        )
    )
    return result


if __name__ == "__main__":
    if "--worker" in sys.argv:
        os.chdir(ROOT)
        traced_worker()
    else:
        script_main(__doc__.splitlines()[0], measure, add_arguments)
