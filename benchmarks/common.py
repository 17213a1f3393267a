"""What the benchmark scripts share: the private server, Django, workers, and the measurements.

Round trips are counted from ``INFO commandstats``. Redis counts the commands a Lua script
calls there too, so a round trip is a call of a command that no convoy script calls
(EVALSHA, BLPOP, ...), less the commands the benchmark itself sent. Convoy's hot path sends
nothing else; a direct call of a command that the scripts also use would go uncounted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import redis

from django_convoy.testing.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SERVER_ENV = "CONVOY_BENCH_REDIS_URL"  # set only for a server a benchmark started itself
SETTINGS = "benchmarks.settings"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OWN_COMMANDS = ("info", "config|resetstat")  # what measuring sends

# The peer table of issue 6 was measured where the PING loop did 8,441 calls/s.
PEER_PING_PER_S = 8441
EMPTY_SCRIPT = "return 0"  # Yardstick.empty_script: the cost of a script call as such
BEST_PEER_DRAIN_PER_S = 6527  # Huey 3.5, -w 4 -k process


# -- the private server -----------------------------------------------------------------------


@contextmanager
def private_redis() -> Iterator[str]:
    """Yield the URL of a redis-server started for the benchmarks (reused by child scripts)."""
    url = os.environ.get(SERVER_ENV)
    if url:
        yield url
        return
    server = RedisServer().start()
    if server.port == 6379:  # never the machine's own Redis, even by accident
        server.stop()
        raise RuntimeError("refusing to benchmark on port 6379")
    os.environ[SERVER_ENV] = server.url
    try:
        yield server.url
    finally:
        del os.environ[SERVER_ENV]
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def client_for(url: str) -> redis.Redis:
    """A plain client of the benchmark's server (decoded replies, like convoy's)."""
    return redis.Redis.from_url(url, decode_responses=True)


def flush(client: redis.Redis) -> None:
    """Empty the benchmark's server; refuse any server a benchmark did not start."""
    own = redis.Redis.from_url(os.environ[SERVER_ENV]).connection_pool.connection_kwargs
    kwargs = client.connection_pool.connection_kwargs
    if (kwargs.get("host"), kwargs.get("port")) != (own.get("host"), own.get("port")):
        raise RuntimeError(f"refusing to flush {kwargs.get('host')}:{kwargs.get('port')}")
    client.flushall()


def setup_django(url: str) -> None:
    """Configure Django with the benchmark settings, pointed at ``url``."""
    os.environ["REDIS_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django

    django.setup()


# -- workers ----------------------------------------------------------------------------------


class WorkerProcess:
    """``manage.py convoy_worker`` as a real process, as a user runs it."""

    def __init__(
        self,
        url: str,
        queue: str,
        concurrency: int | None = None,
        verbosity: int = 0,
        options: Sequence[str] = (),
    ):
        self.log = tempfile.NamedTemporaryFile(prefix="convoy-bench-worker-", suffix=".log")
        command = [sys.executable, str(ROOT / "manage.py"), "convoy_worker", queue]
        command += ["--verbosity", str(verbosity), *options]
        if concurrency:
            command += ["--concurrency", str(concurrency)]
        self.command = command
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "REDIS_URL": url}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid

    def wait_registered(self, client: redis.Redis, timeout: float = 60.0) -> None:
        """Wait until the worker's first heartbeat: its threads run and it is claiming."""
        deadline = time.monotonic() + timeout
        mark = f".{self.pid}."
        while not any(mark in w for w in client.zrange("bench:{workers}:registry", 0, -1)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"worker did not start: {self.command}\n{output}")
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker so far, all threads."""
        return cpu_seconds(self.pid)

    def memory_kb(self, field: str = "VmHWM") -> int:
        """The worker's peak (VmHWM) or current (VmRSS) resident memory, in kB."""
        return memory_kb(self.pid, field)

    def stop(self) -> None:
        """SIGTERM, as a deploy would; kill it if it does not go within 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def output(self) -> str:
        """The worker's log so far (warnings and errors only, at verbosity 0)."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int, field: str = "VmHWM") -> int:
    """A memory figure of /proc/<pid>/status, in kB (VmHWM: peak resident set)."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


# -- Redis's own statistics -------------------------------------------------------------------


def script_commands() -> frozenset[str]:
    """The commands convoy's Lua scripts call (lower case, as INFO commandstats names them)."""
    found = set()
    for path in files("django_convoy.store").joinpath("lua").iterdir():
        if path.name.endswith(".lua"):
            found.update(re.findall(r"redis\.p?call\('(\w+)'", path.read_text(encoding="utf-8")))
    return frozenset(name.lower() for name in found)


def command_calls(client: redis.Redis) -> Counter[str]:
    """Calls per command since the last CONFIG RESETSTAT."""
    return Counter(
        {
            name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in client.info("commandstats").items()
        }
    )


def round_trips(calls: Counter[str], sent_by_us: Counter[str] | None = None) -> int:
    """Round trips the measured clients made: calls no script makes, less our own."""
    inner = script_commands()
    sent_by_us = sent_by_us or Counter()
    return sum(
        n - sent_by_us[name]
        for name, n in calls.items()
        if name not in inner and name not in OWN_COMMANDS
    )


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU seconds the redis-server has used (main thread and others)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_memory(client: redis.Redis) -> dict[str, int]:
    """used_memory and its peak since the last CONFIG RESETSTAT, in bytes."""
    info = client.info("memory")
    return {"used": int(info["used_memory"]), "peak": int(info["used_memory_peak"])}


# -- calibration ------------------------------------------------------------------------------


class Yardstick:
    """Plain redis-py loops timed in slices, to interleave with the work they calibrate.

    Other processes share the 2 cores: alternating slices of the yardstick and of convoy's
    work exposes both to the same interference, so their ratio is steadier than either rate.
    """

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)
        self.client.ping()
        self.calls = 0
        self.loaded = False  # empty_script's script, by a first call outside the clock
        self.seconds = 0.0

    def ping(self, calls: int) -> None:
        """Time ``calls`` sequential PINGs: one round trip each."""
        ping = self.client.ping
        started = time.perf_counter()
        for _ in range(calls):
            ping()
        self.seconds += time.perf_counter() - started
        self.calls += calls

    def empty_script(self, calls: int, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Time ``calls`` EVALSHAs of a script that does nothing, sent with ``keys`` and
        ``args``: the floor of any operation that is one script call with those arguments."""
        script = self.client.register_script(EMPTY_SCRIPT)
        if not self.loaded:
            script(keys=keys, args=args)  # loaded before the clock starts
            self.loaded = True
        started = time.perf_counter()
        for _ in range(calls):
            script(keys=keys, args=args)
        self.seconds += time.perf_counter() - started
        self.calls += calls

    def incr(self, calls: int, batch: int = 1000) -> None:
        """Time ``calls`` INCRs sent ``batch`` to a (non-transactional) pipeline."""
        started = time.perf_counter()
        for start in range(0, calls, batch):
            pipe = self.client.pipeline(transaction=False)
            for _ in range(min(batch, calls - start)):
                pipe.incr("bench:incr")
            pipe.execute()
        self.seconds += time.perf_counter() - started
        self.calls += calls

    @property
    def rate(self) -> float:
        """Calls per second over every slice timed so far."""
        return self.calls / self.seconds

    def close(self) -> None:
        self.client.delete("bench:incr")
        self.client.close()


def ping_loop(url: str, calls: int = 4000) -> float:
    """Sequential round trips per second of a plain redis-py client: the floor of one call."""
    yardstick = Yardstick(url)
    yardstick.ping(calls)
    yardstick.close()
    return yardstick.rate


def pipelined_incr(url: str, total: int = 200_000, batch: int = 1000) -> float:
    """INCRs per second, ``batch`` to a pipeline: the floor of bulk work from Python."""
    yardstick = Yardstick(url)
    yardstick.incr(total, batch)
    yardstick.close()
    return yardstick.rate


# -- summaries --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric figure over the runs, with each figure's spread (min, max)."""
    summary: dict[str, Any] = {"runs": len(runs)}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            summary[key] = statistics.median(values)
            summary[f"{key}_range"] = [min(values), max(values)]
        else:
            summary[key] = values[-1]
    return summary


def script_main(
    description: str,
    measure: Callable[[str, argparse.Namespace], dict[str, Any]],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Run one benchmark script: parse options, start or reuse the server, print JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the median of")
    if add_arguments:
        add_arguments(parser)
    options = parser.parse_args()
    with private_redis() as url:
        setup_django(url)
        result = measure(url, options)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


def progress(message: str) -> None:
    """Tell the person waiting what is running (stderr: stdout carries the JSON)."""
    print(message, file=sys.stderr, flush=True)
