"""The scheduler's cost in Redis: per tick, and per second while no tick is due.

N schedulers (threads of this process: Redis counts the same commands as from N processes)
fire one schedule for ``--seconds``: an every-second schedule (each tick a job) for the cost of
a tick, then a nightly cron schedule alone for the cost of an idle second. The figures are
Redis's own, ``INFO commandstats``: calls and microseconds per command, reset before each run.

    .venv/bin/python -m benchmarks.schedule_cost [--schedulers 5] [--seconds 20]
        [--idle-seconds 125]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from benchmarks.common import client_for, flush


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedulers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=125.0)  # past two resyncs


def _stats(client: Any) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command; a script's own commands are counted too."""
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in client.info("commandstats").items()
        if name not in ("cmdstat_info", "cmdstat_config|resetstat")
    }


def run(url: str, schedule: dict, schedulers: int, seconds: float) -> dict[str, Any]:
    from django.conf import settings
    from django.test import override_settings

    from django_convoy import connection
    from django_convoy.schedules import Scheduler

    client = client_for(url)
    flush(client)
    connection.reset()
    with override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": {"measured": schedule}}):
        running = [Scheduler() for _ in range(schedulers)]
        for scheduler in running:  # past the first reads (last ticks, Redis's clock)
            scheduler.run_once()
        client.config_resetstat()
        stop = threading.Event()
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in running]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    stats = _stats(client)
    added = sum(len(s.fired) for s in running)
    scripts, script_usec = stats.get("evalsha", (0, 0))
    # Each tick script reads TIME once; the other TIMEs are the schedulers' own clock reads.
    round_trips = stats.get("time", (0, 0))[0]  # = scripts + the schedulers' own reads
    inner = sum(n for name, (n, _) in stats.items() if name != "evalsha") - (round_trips - scripts)
    return {
        "schedulers": schedulers,
        "seconds": round(elapsed, 1),
        "ticks_added": added,
        "round_trips": round_trips,
        "round_trips_per_tick": round(round_trips / added, 2) if added else None,
        "round_trips_per_second": round(round_trips / elapsed, 3),
        "commands_in_scripts_per_call": round(inner / scripts, 1) if scripts else None,
        "redis_usec_per_tick": round(script_usec / added, 1) if added else None,
        "redis_usec_per_script_call": round(script_usec / scripts, 1) if scripts else None,
        "redis_cpu_share": f"{script_usec / elapsed / 1e6:.3%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    options = parser.parse_args()
    from benchmarks.common import private_redis, setup_django

    with private_redis() as url:
        setup_django(url)
        every = {"task": "benchmarks.tasks.noop", "every": 1, "overlap": "allow"}
        nightly = {"task": "benchmarks.tasks.noop", "cron": "0 3 * * *"}
        for schedulers in (1, options.schedulers):
            print("per tick:", run(url, every, schedulers, options.seconds))
        for schedulers in (1, options.schedulers):
            print("idle:", run(url, nightly, schedulers, options.idle_seconds))


if __name__ == "__main__":
    main()
