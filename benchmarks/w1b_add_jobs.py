"""W1b: one producer adds 20,000 unique ids with ``Queue.add_jobs``, 1,000 per call.

Target: at least 50% of the rate of INCRs pipelined 1,000 at a time; each call alternates
with 1,000 pipelined INCRs in the same process, so both see the same machine.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from benchmarks.common import (
    Yardstick,
    client_for,
    command_calls,
    flush,
    progress,
    round_trips,
    script_main,
    summarise,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """``options.repeat`` runs, each against an empty server."""
    from django_convoy import get_queue

    client = client_for(url)
    runs = []
    for run in range(options.repeat):
        flush(client)
        queue = get_queue("bench")
        queue.add_job("warm-up")
        yardstick = Yardstick(url)
        ids = [f"w1b-{run}-{i}" for i in range(options.jobs)]
        client.config_resetstat()
        seconds = 0.0
        for start in range(0, options.jobs, options.batch):
            yardstick.incr(options.batch, options.batch)
            began = time.perf_counter()
            queue.add_jobs(ids[start : start + options.batch])
            seconds += time.perf_counter() - began
        trips = round_trips(command_calls(client), Counter({"incr": yardstick.calls}))
        yardstick.close()
        rate = options.jobs / seconds
        runs.append(
            {
                "jobs_per_s": rate,
                "incr_per_s": yardstick.rate,
                "vs_incr": rate / yardstick.rate,
                "round_trips_per_job": trips / options.jobs,
                "redis_peak_bytes": int(client.info("memory")["used_memory_peak"]),
            }
        )
        progress(
            f"  W1b: {rate:,.0f} jobs/s = {rate / yardstick.rate:.0%} "
            f"of pipelined INCR {yardstick.rate:,.0f}/s"
        )
    return summarise(runs)


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
