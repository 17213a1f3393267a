"""W1: one producer adds 20,000 unique ids, one ``Queue.add_job`` call each.

Target: at least 90% of the rate of a plain redis-py PING loop (one round trip per call is
the floor for one call per job), with exactly one round trip per job. Slices of 1,000 adds
alternate with slices of 1,000 PINGs in the same process, so both see the same machine, and
with slices of 1,000 calls of an empty script sent with the add's keys and arguments: the
floor of any add that is one script call, which says how much of the gap to a PING is the
script call as such (sending 19 arguments, running a script) and how much is convoy's.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
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

SLICE = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--api",
        choices=("add_job", "enqueue"),
        default="add_job",
        help="Queue.add_job(id), or a @convoy_task's enqueue() (the task API)",
    )


def adder(api: str, queue: Any, run: int) -> Callable[[int], object]:
    """The call W1 times, given the job's number: ``add_job`` or the task API's enqueue."""
    if api == "enqueue":
        from benchmarks.tasks import contended

        return contended.enqueue
    return lambda i: queue.add_job(f"w1-{run}-{i}")


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """``options.repeat`` runs, each against an empty server."""
    from django_convoy import get_queue

    client = client_for(url)
    runs = []
    for run in range(options.repeat):
        flush(client)
        queue = get_queue("bench")
        queue.add_job("warm-up")  # loads the script: not part of the steady state
        add = adder(options.api, queue, run)
        yardstick, floor = Yardstick(url), Yardstick(url)
        floor_args = ("ignore", 0, 0, "keep", 0, f"w1-{run}-00000", '{"payload":null}')
        floor.empty_script(0, queue.keys, floor_args)  # loads it: not part of the steady state
        client.config_resetstat()
        seconds = cpu = 0.0
        for start in range(0, options.jobs, SLICE):
            yardstick.ping(SLICE)
            floor.empty_script(SLICE, queue.keys, floor_args)
            ids = range(start, min(start + SLICE, options.jobs))
            cpu_began, began = time.process_time(), time.perf_counter()
            for i in ids:
                add(i)
            seconds += time.perf_counter() - began
            cpu += time.process_time() - cpu_began
        calls = command_calls(client)
        trips = round_trips(calls, Counter({"ping": yardstick.calls, "evalsha": floor.calls}))
        yardstick.close()
        floor.close()
        client.config_resetstat()  # the add script's own time, without the floor's calls
        for i in range(options.jobs, options.jobs + SLICE):
            add(i)
        script_us = client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
        rate = options.jobs / seconds
        runs.append(
            {
                "jobs_per_s": rate,
                "ping_per_s": yardstick.rate,
                "vs_ping": rate / yardstick.rate,
                "empty_script_per_s": floor.rate,
                "empty_script_vs_ping": floor.rate / yardstick.rate,
                "vs_empty_script": rate / floor.rate,
                "round_trips_per_job": trips / options.jobs,
                "client_cpu_us_per_job": 1e6 * cpu / options.jobs,
                "script_us_per_call": float(script_us),
                "redis_peak_bytes": int(client.info("memory")["used_memory_peak"]),
            }
        )
        progress(
            f"  W1 {options.api}: {rate:,.0f} jobs/s = {rate / yardstick.rate:.0%} "
            f"of PING {yardstick.rate:,.0f}/s, {rate / floor.rate:.0%} of an empty script "
            f"{floor.rate:,.0f}/s ({floor.rate / yardstick.rate:.0%} of PING)"
        )
    return summarise(runs)


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
