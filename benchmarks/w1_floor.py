"""W1 taken apart: what one ``add_job`` costs beyond a PING, layer by layer.

Each layer is a script call sent from plain redis-py with the add's 14 keys and 5 arguments,
except the first two, and each adds one thing to the one before:

  ping          PING: the floor of one round trip
  empty_nokeys  a script that does nothing, no keys: the cost of a script call as such
  empty         the same with the add's keys and arguments (W1e in ``make bench``)
  prelude       convoy's prelude, then nothing: the helpers every convoy script builds
  guard         the prelude and its corrupt-key guard (refuse_corrupt_keys), then nothing
  bare_add      a unique add with no guard, prelude or hand-off (HEXISTS, ZSCORE, INCR, HSET,
                ZADD, LLEN): what any one-script unique add must do at least
  add_script    convoy's add script, sent straight from redis-py
  add_job       ``Queue.add_job``: the script plus convoy's Python

Rounds of ``--calls`` calls per layer alternate, so every layer sees the same machine; each
layer's client time per call and Redis's time per call (``INFO commandstats``) are the
medians over the rounds, and each rate is set against the PING loop's.

    python -m benchmarks.w1_floor [--rounds 5] [--calls 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from itertools import count
from typing import Any

from benchmarks.common import EMPTY_SCRIPT, client_for, flush, progress, script_main
from django_convoy.store.scripts import prelude as prelude_source
from django_convoy.store.scripts import scripts_for

# A yardstick, not a convoy script: the least a unique add can do in one script call.
BARE_ADD = """
local id = ARGV[4]
if redis.call('HEXISTS', KEYS[5], id) == 1 or redis.call('ZSCORE', KEYS[3], id) then
  return {0, 'queued'}
end
local seq = redis.call('INCR', KEYS[9])
redis.call('HSET', KEYS[5], id, ARGV[5])
redis.call('ZADD', KEYS[1], seq, id)
if redis.call('LLEN', KEYS[10]) == 0 then redis.call('RPUSH', KEYS[10], '1') end
return {1, 'queued'}
"""

BODY = '{"payload":null}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5000, help="calls per layer and round")


def layers(queue: Any) -> dict[str, Callable[[str], Any]]:
    """Each layer as a call taking a fresh job id."""
    client = queue.client
    keys = list(queue.keys)

    def script(source: str, with_keys: bool = True) -> Callable[[str], Any]:
        registered = client.register_script(source)
        used = keys if with_keys else []
        return lambda job_id: registered(keys=used, args=["ignore", 0, 0, "keep", 0, job_id, BODY])

    prelude = prelude_source()
    return {
        "ping": lambda _: client.ping(),
        "empty_nokeys": script(EMPTY_SCRIPT, with_keys=False),
        "empty": script(EMPTY_SCRIPT),
        "prelude": script(prelude + "\nreturn 0"),
        "guard": script(prelude + "\nrefuse_corrupt_keys()\nreturn 0"),
        "bare_add": script(BARE_ADD),
        "add_script": lambda job_id: scripts_for(client).by_name["add"](
            keys=keys, args=["ignore", 0, 0, "keep", 0, job_id, BODY]
        ),
        "add_job": queue.add_job,
    }


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """``options.rounds`` interleaved rounds of every layer; medians per layer."""
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("bench")
    calls = layers(queue)
    ids = (f"floor-{i}" for i in count())
    for call in calls.values():
        call(next(ids))  # loads each script outside the clock
    client_us: dict[str, list[float]] = {name: [] for name in calls}
    server_us: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(options.rounds):
        for name, call in calls.items():
            batch = [next(ids) for _ in range(options.calls)]
            client.config_resetstat()
            started = time.perf_counter()
            for job_id in batch:
                call(job_id)
            client_us[name].append(1e6 * (time.perf_counter() - started) / options.calls)
            stats = client.info("commandstats")
            command = "cmdstat_ping" if name == "ping" else "cmdstat_evalsha"
            server_us[name].append(float(stats[command]["usec_per_call"]))
    ping_us = statistics.median(client_us["ping"])
    result: dict[str, Any] = {}
    for name in calls:
        per_call = statistics.median(client_us[name])
        in_redis = statistics.median(server_us[name])
        result[name] = {
            "client_us": per_call,
            "redis_us": in_redis,
            "vs_ping": ping_us / per_call,
        }
        progress(
            f"  {name:<12} {per_call:6.1f} us per call, {in_redis:5.1f} us in Redis, "
            f"{ping_us / per_call:.0%} of PING's rate"
        )
    return result


if __name__ == "__main__":
    script_main(__doc__.splitlines()[0], measure, add_arguments)
