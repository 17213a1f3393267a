"""Flow control: RATE_LIMIT across worker processes, GROUP_CONCURRENCY's cost, fairness.

rate
    Queue ``flow-rate`` (``RATE_LIMIT "500/s"``: a bucket of 500) holds one burst plus
    ``--seconds`` of runs; ``convoy_worker --processes 4`` drains it. Each run records when it
    started (one monotonic clock for all processes). Figures: runs started per second once the
    burst is spent (mean and the range of whole seconds), and the most starts any window held
    beyond the rate's share of it (must be <= the burst, 500). Target: 500 +- 1% per second.
groups
    W2's drain of ``--jobs`` jobs by one ``convoy_worker`` (``--worker``'s options; default
    ``--concurrency 16``), rounds alternating: queue ``bench`` (no limits, no groups) against
    ``flow-groups`` (``GROUP_CONCURRENCY`` 1) with the jobs spread over 1,000 groups. ``--job
    noop`` (W2: the queue's own cost, nothing to hide it) or ``io`` (W2-io: one INCR per job, as
    ``w2_io.py``). Target: within 20%.
fairness
    Tenant A's 10,000 jobs are queued, then tenant B's 10, in ``flow-groups``; one worker
    (concurrency 1) drains them. Figure: when B's last job started, against when A's 20th did.
    Target: B's last before A's 20th.
"""

from __future__ import annotations

import argparse
import shlex
import time
from typing import Any

from benchmarks.common import WorkerProcess, client_for, flush, progress, script_main

RATE, BURST = 500, 500
BODY = '{"args":[],"kwargs":{}}'
IO_BODY = '{"args":[0],"kwargs":{}}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default="rate,groups,fairness")
    parser.add_argument("--seconds", type=int, default=60, help="rate: the drain's length")
    parser.add_argument("--processes", type=int, default=4, help="rate: worker processes")
    parser.add_argument("--jobs", type=int, default=20_000, help="groups: jobs per drain")
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument(
        "--worker",
        action="append",
        help="groups: convoy_worker's options, once per worker to measure "
        "(default: --worker='--concurrency 16')",
    )
    parser.add_argument("--job", choices=("noop", "io"), default="noop", help="groups: the job")


def _starts(client: Any) -> list[tuple[int, str]]:
    from benchmarks.tasks import STARTS_KEY

    rows = (line.split(" ", 1) for line in client.lrange(STARTS_KEY, 0, -1))
    return sorted((int(ns), tag) for ns, tag in rows)


def _wait_processed(client: Any, queue: Any, jobs: int, timeout: float) -> float:
    started = time.perf_counter()
    deadline = started + timeout
    while int(client.hget(queue.keys.stats, "processed") or 0) < jobs:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{queue.name}: not drained in {timeout:.0f} s: {queue.stats()}")
        time.sleep(0.005)
    return time.perf_counter() - started


def _wait_workers(client: Any, n: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while client.zcard("bench:{workers}:registry") < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} workers did not register")
        time.sleep(0.05)


def _resume(client: Any, queue: Any) -> None:
    client.delete(queue.keys.paused)
    client.rpush(queue.keys.wake, "1")


def rate(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """RATE_LIMIT 500/s drained by --processes worker processes."""
    from benchmarks.tasks import rate_probe
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("flow-rate")
    queue.pause()
    jobs = BURST + RATE * options.seconds
    for start in range(0, jobs, 1000):
        queue.add_encoded(rate_probe.name, [(f"r{i}", BODY) for i in range(start, start + 1000)])
    worker_options = ["--processes", str(options.processes), "--no-scheduler"]
    with WorkerProcess(url, "flow-rate", 8, options=worker_options):
        _wait_workers(client, options.processes)
        _resume(client, queue)
        _wait_processed(client, queue, jobs, options.seconds * 3 + 60)
    times = [ns / 1e9 for ns, _ in _starts(client)]
    first = times[0]
    # The burst goes in the first instants; after it the bucket refills at the rate: whole
    # seconds from the end of the first one on.
    seconds = int(times[-1] - first)
    per_second = [0] * seconds
    for t in times:
        index = int(t - first)
        if 1 <= index < seconds:
            per_second[index] += 1
    steady = per_second[1:]
    # The most starts any window [t_i, t_k] held beyond the rate's share of its length.
    excess, lowest = 0.0, float("inf")
    for k, t in enumerate(times):
        lowest = min(lowest, k - RATE * t)
        excess = max(excess, k - RATE * t - lowest + 1)
    result = {
        "jobs": jobs,
        "runs_per_s_mean": sum(steady) / len(steady),
        "runs_per_s_min": min(steady),
        "runs_per_s_max": max(steady),
        "most_beyond_rate_in_a_window": excess,
        "burst": BURST,
    }
    progress(
        f"  rate 500/s, {options.processes} processes: {result['runs_per_s_mean']:,.1f} runs/s "
        f"(seconds {min(steady)}-{max(steady)}), at most {excess:.0f} beyond the rate in any "
        f"window (burst {BURST})"
    )
    return result


def _drain(url: str, queue_name: str, options: argparse.Namespace, worker: str) -> float:
    """Jobs per second a worker started with ``worker``'s options drains ``queue_name`` at."""
    from benchmarks import tasks
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue(queue_name)
    queue.pause()
    grouped = queue_name == "flow-groups"
    task = {
        ("noop", False): tasks.noop,
        ("noop", True): tasks.group_noop,
        ("io", False): tasks.io_incr,
        ("io", True): tasks.group_io_incr,
    }[options.job, grouped]
    body = BODY if options.job == "noop" else IO_BODY
    per_group = options.jobs // options.groups if grouped else options.jobs
    for g in range(options.groups if grouped else 1):
        entries = [(f"j{g}-{i}", body) for i in range(per_group)]
        queue.add_encoded(task.name, entries, group=f"tenant-{g}" if grouped else None)
    jobs = per_group * (options.groups if grouped else 1)
    with WorkerProcess(url, queue_name, options=shlex.split(worker)) as process:
        process.wait_registered(client)
        _resume(client, queue)
        seconds = _wait_processed(client, queue, jobs, 600)
    return jobs / seconds


def groups(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """W2 with GROUP_CONCURRENCY 1 over 1,000 groups against W2 without limits, per worker."""
    result: dict[str, Any] = {}
    for worker in options.worker or ["--concurrency 16"]:
        progress(f"  convoy_worker {worker}, {options.job} jobs:")
        found: dict[str, list[float]] = {"unlimited": [], "groups": []}
        for _ in range(options.repeat):
            found["unlimited"].append(_drain(url, "bench", options, worker))
            progress(f"    W2 unlimited: {found['unlimited'][-1]:,.0f} jobs/s")
            found["groups"].append(_drain(url, "flow-groups", options, worker))
            progress(
                f"    W2 {options.groups} groups, GROUP_CONCURRENCY 1: "
                f"{found['groups'][-1]:,.0f} jobs/s"
            )
        unlimited, capped = (sorted(v)[len(v) // 2] for v in found.values())
        progress(f"    W2 groups vs unlimited: {capped / unlimited:.1%} (medians)")
        result[worker] = {
            "unlimited_jobs_per_s": unlimited,
            "groups_jobs_per_s": capped,
            "ratio": capped / unlimited,
            "rounds": found,
        }
    return result


def _started_enough(starts: list[tuple[int, str]]) -> bool:
    tags = [tag for _, tag in starts]
    return tags.count("B") == 10 and tags.count("A") >= 20


def fairness(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Tenant A's 10,000 queued jobs against tenant B's 10, added after them."""
    from benchmarks.tasks import tenant_probe
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("flow-groups")
    queue.pause()
    for tenant, n in (("A", 10_000), ("B", 10)):
        for start in range(0, n, 1000):
            entries = [
                (f"{tenant}{i}", f'{{"args":["{tenant}",{i}],"kwargs":{{}}}}')
                for i in range(start, min(n, start + 1000))
            ]
            queue.add_encoded(tenant_probe.name, entries, group=f"tenant-{tenant}")
    with WorkerProcess(url, "flow-groups", 1) as worker:
        worker.wait_registered(client)
        _resume(client, queue)
        deadline = time.monotonic() + 30
        while not _started_enough(_starts(client)):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"B's jobs did not all start: {queue.stats()}\n{worker.output()}"
                )
            time.sleep(0.01)
        queue.pause()
    starts = _starts(client)
    first = starts[0][0]
    a_times = [ns for ns, tag in starts if tag == "A"]
    b_times = [ns for ns, tag in starts if tag == "B"]
    b_last_ms = (b_times[-1] - first) / 1e6
    a_20th_ms = (a_times[19] - first) / 1e6
    position = [tag for _, tag in starts].index("B", 0) if b_times else -1
    b_last_position = max(i for i, (_, tag) in enumerate(starts) if tag == "B") + 1
    progress(
        f"  fairness: B's last of 10 started at {b_last_ms:.1f} ms (start {b_last_position}), "
        f"A's 20th at {a_20th_ms:.1f} ms"
    )
    return {
        "b_last_start_ms": b_last_ms,
        "a_20th_start_ms": a_20th_ms,
        "b_last_position": b_last_position,
        "b_first_position": position + 1,
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Run the parts asked for."""
    parts = {"rate": rate, "groups": groups, "fairness": fairness}
    return {name: parts[name](url, options) for name in options.parts.split(",")}


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
