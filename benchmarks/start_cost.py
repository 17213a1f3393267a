"""W0: a worker command's start, from ``exec`` to its first job, convoy beside Huey: Huey's
own consumer (no Django), and the same through Huey's Django integration (``manage.py
run_huey`` in the demo project without convoy: ``benchmarks/djhuey_settings.py``), which is
what a Django project runs and the fair peer of ``manage.py convoy_worker``.

Each round starts each worker command with one W3-io job waiting (``benchmarks/io_job.py``'s
``record_start``) and times from just before the command is started to the job's first line
(``time.monotonic_ns()``, one clock for every process), then stops it; rounds alternate the
commands, and each figure is the median of the rounds. Then one run of each convoy command
under ``python -X importtime`` says where its imports' time goes, by package (the time of
each package's own modules, which add up to the whole).

    python -m benchmarks.start_cost [--rounds 5] [--convoy='--pool processes'] [--top 15]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import client_for, flush, progress, script_main
from benchmarks.io_job import LATENCY_KEY
from benchmarks.w2_io import Command, Worker, convoy_worker, huey_worker

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--convoy",
        action="append",
        help="convoy_worker arguments of one command, repeatable (default: '' and "
        "'--pool processes')",
    )
    parser.add_argument("--huey-workers", type=int, default=4, help="huey_consumer -w")
    parser.add_argument("--top", type=int, default=15, help="import rows to print per command")


def first_job_s(url: str, worker: Worker, argv: list[str] | None = None) -> tuple[float, str]:
    """Seconds from starting ``worker`` (or ``argv``) with one job waiting to that job's first
    line, and the command's output."""
    from benchmarks import huey_app
    from benchmarks.tasks import io_latency

    client = client_for(url)
    flush(client)
    (io_latency.enqueue if worker.kind == "convoy" else huey_app.io_latency)(-1)
    with Command(argv or worker.argv, url, worker.settings) as command:
        deadline = time.monotonic() + 60
        while not client.llen(LATENCY_KEY):
            command.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"W0: no first job\n{command.output()}")
            time.sleep(0.002)
        started_ns = int(client.lindex(LATENCY_KEY, 0).split()[1])
        command.log.flush()
        return (started_ns - command.started_ns) / 1e9, Path(command.log.name).read_text()


def import_rows(output: str) -> list[tuple[float, str]]:
    """(ms, package) for each top-level package: the time its own modules took to import
    (``-X importtime``'s self time, summed), longest first; they add up to the whole."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            package = match[4].split(".")[0]
            found[package] = found.get(package, 0.0) + int(match[1]) / 1000
    return sorted(((ms, name) for name, ms in found.items()), reverse=True)


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    convoy = [convoy_worker(args, "latency") for args in options.convoy or ("", "--pool processes")]
    # Huey's own consumer, then the same through Django (what a Django project runs).
    workers = [huey_worker(options.huey_workers), huey_worker(options.huey_workers, True), *convoy]
    runs: dict[str, list[float]] = {worker.label: [] for worker in workers}
    for round_ in range(options.rounds):
        shift = round_ % len(workers)
        for worker in workers[shift:] + workers[:shift]:
            seconds, _ = first_job_s(url, worker)
            runs[worker.label].append(seconds)
    huey = statistics.median(runs[workers[0].label])
    result: dict[str, Any] = {"commands": {}}
    for worker in workers:
        median = statistics.median(runs[worker.label])
        result["commands"][worker.label] = {
            "first_job_s": median,
            "min_s": min(runs[worker.label]),
            "max_s": max(runs[worker.label]),
            "vs_huey": median / huey,
        }
        progress(
            f"  W0 {worker.label}: {median:.3f} s to the first job "
            f"({min(runs[worker.label]):.3f}-{max(runs[worker.label]):.3f}; "
            f"{median / huey:.2f}x Huey's)"
        )
    for worker in convoy:
        argv = [sys.executable, "-X", "importtime", *worker.argv[1:]]
        seconds, output = first_job_s(url, worker, argv)
        rows = import_rows(output)
        result["commands"][worker.label]["imports_ms"] = {name: ms for ms, name in rows}
        total = sum(ms for ms, _ in rows)
        progress(
            f"  W0 imports of {worker.label}: {total:.0f} ms in all ({seconds:.3f} s to the "
            "first job under -X importtime); by package, its own modules' time:"
        )
        for ms, name in rows[: options.top]:
            progress(f"    {ms:7.1f} ms  {name}")
    return result


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
