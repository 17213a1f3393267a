"""W3 taken apart: where an idle worker's enqueue-to-start latency goes, step by step.

An idle worker gets a job by one of two paths, traced apart:

- handed: the worker's last claim found nothing and asked to be handed the next job, so the
  add script claims the job for it and pushes the run to its inbox; the worker's BLPOP returns
  the run itself, and no claim round trip follows. The usual path for a worker that waits;
- claimed: the worker was not waiting for a hand-off (it was busy, say), so the add pushes a
  wake-up token; BLPOP returns it, and the worker claims the job in a round trip of its own.

The worker runs in a process of its own with timestamps (``time.monotonic_ns()``, one clock
for every process) taken in memory at each step, and written to the server in the background
so that recording costs the path nothing. The steps, p50 (p99) per path:

  to_wake      producer calls ``add_job`` -> the worker's BLPOP returns (inbox run | wake token)
  to_dispatch  handed: BLPOP returned -> the run is dispatched to the executors
  to_claim     claimed: BLPOP returned -> the claim script is sent
  claim        claimed: the claim's round trip
  handoff      dispatched (handed) or claim returned (claimed) -> an executor starts the run
  to_code      the executor starts the run -> the job's first line

and ``add_rt``, the producer's ``add_job`` round trip. Jobs claimed otherwise (by the reporter
along with an ack, or by a claim that no wake-up preceded) are counted, not traced.

    python -m benchmarks.w3_breakdown [--jobs 1000] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import redis

from benchmarks.common import ROOT, client_for, flush, percentile, progress, script_main

TRACE_KEY = "bench:trace"  # id -> "<path> <woke> ... <executed>" (ns), the path's own marks
PATHS = {  # the steps between the marks: t0, the trace's, the job's first line
    "handed": ("to_wake", "to_dispatch", "handoff", "to_code"),
    "claimed": ("to_wake", "to_claim", "claim", "handoff", "to_code"),
}
Steps = dict[str, dict[str, list[float]]]  # path -> step -> durations (us)


# -- the traced worker (child process) --------------------------------------------------------


class Tracer:
    """The worker's timestamps (ns), kept in memory by its threads until written out."""

    def __init__(self) -> None:
        self.woke: int | None = None  # the last BLPOP that returned, until a claim uses it
        self.marks: dict[str, tuple[Any, ...]] = {}  # id -> (path, woke, ...) before the run
        self.starts: dict[str, int] = {}  # id -> when an executor started the run

    def take_woke(self) -> int | None:
        """The wake-up a claim or hand-off follows (None: it follows none)."""
        woke, self.woke = self.woke, None
        return woke

    def ready(self) -> dict[str, str]:
        """The traces completed since the last call, as TRACE_KEY holds them."""
        done = [job_id for job_id in list(self.starts) if job_id in self.marks]
        return {
            job_id: " ".join(map(str, (*self.marks.pop(job_id), self.starts.pop(job_id))))
            for job_id in done
        }


def instrument(tracer: Tracer) -> None:
    """Time the worker's BLPOP, claim, hand-off and executor start (after ``django.setup()``)."""
    from django_convoy import queue as queue_module
    from django_convoy.worker import claimer as claimer_module
    from django_convoy.worker import executors as executors_module

    blpop, claim = redis.Redis.blpop, queue_module.ConvoyQueue.claim
    take_handed = claimer_module.Claimer._take_handed
    execute = executors_module.execute

    def timed_blpop(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = blpop(self, *args, **kwargs)
        if reply is not None:
            tracer.woke = time.monotonic_ns()
        return reply

    def timed_claim(self: Any, *args: Any, **kwargs: Any) -> Any:
        woke, sent = tracer.take_woke(), time.monotonic_ns()
        batch = claim(self, *args, **kwargs)
        back = time.monotonic_ns()
        if woke is not None:
            for job in batch.runs:
                tracer.marks[job.id] = ("claimed", woke, sent, back)
        return batch

    def timed_take_handed(self: Any, q: Any, message: str) -> None:
        woke = tracer.take_woke()
        take_handed(self, q, message)
        dispatched = time.monotonic_ns()
        if woke is not None:
            tracer.marks[json.loads(message)[0]] = ("handed", woke, dispatched)

    def timed_execute(job: Any, worker_id: str) -> Any:
        tracer.starts[job.id] = time.monotonic_ns()
        return execute(job, worker_id)

    redis.Redis.blpop = timed_blpop
    queue_module.ConvoyQueue.claim = timed_claim
    claimer_module.Claimer._take_handed = timed_take_handed
    executors_module.execute = timed_execute


def write_out(tracer: Tracer, recorder: redis.Redis) -> None:
    """Write the completed traces to the server, every 0.2 s (a thread of its own)."""
    while True:
        time.sleep(0.2)
        if ready := tracer.ready():
            recorder.hset(TRACE_KEY, mapping=ready)


def traced_worker() -> None:
    """Run a worker on the latency queue with its idle paths instrumented (the child process)."""
    import django

    django.setup()
    from django_convoy import worker as worker_module

    tracer = Tracer()
    instrument(tracer)
    recorder = redis.Redis.from_url(os.environ["REDIS_URL"])
    threading.Thread(target=write_out, args=(tracer, recorder), daemon=True).start()
    worker_module.Worker(["latency"]).run()


# -- the producer and the figures -------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs per second")


def produce(options: argparse.Namespace) -> tuple[dict[str, int], list[float]]:
    """Add the jobs at the paced rate; return when each add was called (ns) and its round
    trip (us)."""
    from django_convoy import get_queue

    queue, period, due = get_queue("latency"), 1 / options.rate, time.monotonic()
    t0s: dict[str, int] = {}
    add_rts: list[float] = []
    for i in range(options.jobs):
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
        t0s[f"w3-{i}"] = t0 = time.monotonic_ns()
        queue.add_job(f"w3-{i}", {"t0": t0})
        add_rts.append((time.monotonic_ns() - t0) / 1000)
    return t0s, add_rts


def run_traced(url: str, options: argparse.Namespace) -> tuple[dict[str, int], list[float]]:
    """Start the traced worker, produce the jobs and wait for them to start."""
    from benchmarks.tasks import LATENCY_KEY

    client = client_for(url)
    env = {**os.environ, "REDIS_URL": url}
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.w3_breakdown", "--worker"], env=env)
    try:
        while not client.zcard("bench:{workers}:registry"):
            time.sleep(0.02)
        time.sleep(0.5)
        t0s, add_rts = produce(options)
        deadline = time.monotonic() + 30
        while client.llen(LATENCY_KEY) < options.jobs and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the last traces' write-out
    finally:
        child.terminate()
        child.wait(timeout=30)
    return t0s, add_rts


def read_steps(client: redis.Redis, t0s: dict[str, int]) -> Steps:
    """Each traced job's steps (us), by the path it took."""
    from benchmarks.tasks import LATENCY_KEY

    started = dict(tuple(map(int, e.split())) for e in client.lrange(LATENCY_KEY, 0, -1))
    steps: Steps = {path: {s: [] for s in (*names, "total")} for path, names in PATHS.items()}
    for job_id, trace in client.hgetall(TRACE_KEY).items():
        path, *marks = trace.split()
        t0 = t0s[job_id]
        if t0 not in started:
            continue
        times = (t0, *map(int, marks), started[t0])
        for step, (begin, end) in zip(PATHS[path], pairwise(times), strict=True):
            steps[path][step].append((end - begin) / 1000)
        steps[path]["total"].append((times[-1] - t0) / 1000)
    return steps


def percentiles(name: str, values: Sequence[float]) -> dict[str, float]:
    """``<name>_p50_us`` and ``<name>_p99_us`` of ``values`` (none if there are none)."""
    return {f"{name}_p{p}_us": percentile(values, p) for p in (50, 99) if values}


def summary(name: str, values: Sequence[float]) -> str:
    return f"{name} {percentile(values, 50):.0f} ({percentile(values, 99):.0f})"


def report(steps: Steps, add_rts: list[float], jobs: int, started: int) -> dict[str, Any]:
    """The figures of the run: jobs per path, and p50 / p99 of every step (us)."""
    result: dict[str, Any] = {"jobs": jobs, "started_jobs": started}
    result |= percentiles("add_rt", add_rts)
    lines = [f"  W3, {started} of {jobs} jobs started, p50 (p99) us: {summary('add_rt', add_rts)}"]
    for path, path_steps in steps.items():
        count = result[f"{path}_jobs"] = len(path_steps["total"])
        for step, values in path_steps.items():
            result |= percentiles(f"{path}_{step}", values)
        shown = ", ".join(summary(step, v) for step, v in path_steps.items() if v)
        lines.append(f"    {path:<9}{count:>5} jobs" + (f": {shown}" if shown else ""))
    result["untraced_jobs"] = started - sum(len(s["total"]) for s in steps.values())
    lines.append(f"    {'untraced':<9}{result['untraced_jobs']:>5} jobs (claimed otherwise)")
    progress("\n".join(lines))
    return result


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """One traced worker, paced jobs, and the percentiles of each step of each path (us)."""
    from benchmarks.tasks import LATENCY_KEY

    client = client_for(url)
    flush(client)
    t0s, add_rts = run_traced(url, options)
    started = client.llen(LATENCY_KEY)
    return report(read_steps(client, t0s), add_rts, options.jobs, started)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        os.chdir(ROOT)
        traced_worker()
    else:
        script_main(__doc__.splitlines()[0], measure, add_arguments)
