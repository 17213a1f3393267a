"""W4: 8 producer processes contend for 1,000 ids while one worker drains them.

Each producer enqueues a random one of the 1,000 ids as fast as it can for a few seconds
(``@convoy_task.enqueue``); every run records its id, token and interval. Convoy's promise:
an id is queued once at a time and run by one worker at a time, so runs of one id never
overlap, and every accepted add runs exactly once (executions per id == accepted adds).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from benchmarks.common import (
    ROOT,
    SERVER_ENV,
    WorkerProcess,
    client_for,
    flush,
    progress,
    redis_memory,
    script_main,
    setup_django,
)

IDS = 1000
READY_KEY, GO_KEY = "bench:ready", "bench:go"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long producers add")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--producer", type=int, default=None, help=argparse.SUPPRESS)


def produce(url: str, number: int, seconds: float) -> dict[str, Any]:
    """One producer: wait for the start signal, then add random ids for ``seconds``."""
    from benchmarks.tasks import contended

    client = client_for(url)
    client.incr(READY_KEY)
    while not client.exists(GO_KEY):
        time.sleep(0.005)
    rng = random.Random(number)
    accepted: Counter[int] = Counter()
    attempts = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        key = rng.randrange(IDS)
        attempts += 1
        if contended.enqueue(key).added:
            accepted[key] += 1
    return {"attempts": attempts, "accepted": accepted}


def once(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """One contest: a worker, ``options.producers`` producer processes, then the audit."""
    from benchmarks.tasks import RUNS_KEY
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("unique")
    with WorkerProcess(url, "unique", options.concurrency) as worker:
        worker.wait_registered(client)
        command = [sys.executable, "-m", "benchmarks.w4_uniqueness", "--seconds"]
        producers = [
            subprocess.Popen(
                [*command, str(options.seconds), "--producer", str(n)],
                cwd=ROOT,
                env={**os.environ, SERVER_ENV: url},
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(options.producers)
        ]
        while int(client.get(READY_KEY) or 0) < options.producers:
            if any(p.poll() is not None for p in producers):
                raise RuntimeError("W4: a producer died before the start")
            time.sleep(0.01)
        client.set(GO_KEY, "1")
        outputs = [json.loads(p.communicate(timeout=120)[0]) for p in producers]
        accepted: Counter[str] = Counter()
        for output in outputs:
            accepted.update({f"u-{key}": n for key, n in output["accepted"].items()})
        deadline = time.monotonic() + 60
        while (stats := queue.stats())["processed_total"] < accepted.total() or (
            stats["queued"] or stats["processing"]
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"W4: the worker did not drain: {stats}")
            time.sleep(0.02)
        peak_rss_kb = worker.memory_kb()
    runs = defaultdict(list)
    for entry in client.lrange(RUNS_KEY, 0, -1):
        job_id, token, started, ended = entry.split()
        runs[job_id].append((int(started), int(ended), token))
    overlaps = 0
    for intervals in runs.values():
        intervals.sort()
        overlaps += sum(b[0] < a[1] for a, b in zip(intervals, intervals[1:], strict=False))
    executions = Counter({job_id: len(intervals) for job_id, intervals in runs.items()})
    per_id = [executions[f"u-{key}"] for key in range(IDS)]
    tokens = [token for intervals in runs.values() for _, _, token in intervals]
    return {
        "producers": options.producers,
        "attempts": sum(o["attempts"] for o in outputs),
        "accepted": accepted.total(),
        "executions": executions.total(),
        "executions_per_id_min": min(per_id),
        "executions_per_id_max": max(per_id),
        "executions_per_id_mean": sum(per_id) / IDS,
        "ids_whose_runs_differ_from_accepted_adds": sum(
            executions[job_id] != accepted[job_id] for job_id in set(executions) | set(accepted)
        ),
        "duplicate_tokens": len(tokens) - len(set(tokens)),
        "overlaps": overlaps,
        "worker_peak_rss_kb": peak_rss_kb,
        "redis_peak_bytes": redis_memory(client)["peak"],
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """``options.repeat`` contests; every one must be clean, so all are reported."""
    runs = []
    for _ in range(options.repeat):
        runs.append(once(url, options))
        last = runs[-1]
        progress(
            f"  W4: {last['attempts']:,} adds, {last['accepted']:,} accepted, "
            f"{last['executions']:,} runs, {last['overlaps']} overlaps, "
            f"{last['ids_whose_runs_differ_from_accepted_adds']} ids with runs != accepted adds"
        )
    return {"runs": runs}


def main() -> None:
    options = argparse.ArgumentParser()
    add_arguments(options)
    options.add_argument("--repeat", type=int, default=3)
    parsed, _ = options.parse_known_args()
    if parsed.producer is None:
        script_main(__doc__.splitlines()[0], measure, add_arguments)
        return
    url = os.environ[SERVER_ENV]
    setup_django(url)
    json.dump(produce(url, parsed.producer, parsed.seconds), sys.stdout)


if __name__ == "__main__":
    main()
