"""W2-io, W1-io, W3-io: convoy beside Huey, with a job that does one Redis round trip.

Issue 14's workloads: the job of every queue is one ``INCR`` through a redis-py client of the
job's own (``benchmarks/io_job.py``), standing in for the database write a real job makes.
Everything runs against one private redis-server; Huey (``benchmarks/huey_app.py``, a plain
``RedisHuey`` under its own name) runs as ``huey_consumer -w 4 -k process -q``.

* **W2-io drain**: N jobs (20,000) queued, then ONE worker command started; timed from the
  command's start to the job counter reaching N (polled every 5 ms). Each configuration
  (convoy's ``--concurrency 16`` and ``32`` threads, ``--pool processes --concurrency 4``,
  ``--processes 2`` and ``4`` when ``convoy_worker --help`` offers it, and Huey) runs once per
  round, rounds interleave the configurations (in a rotated order) and each figure is the
  median of the rounds. Per-job figures are taken over the steady window, from the first poll
  that sees a job done to the last job done (start-up excluded; the ``from_start`` and
  ``lifetime`` figures in the JSON include it): worker user and system CPU and voluntary and
  involuntary context switches of the command's whole process tree (``benchmarks/proc_tree.py``
  says how exits are accounted for), redis-server CPU (``INFO cpu``) and Redis commands
  (``INFO commandstats``, which counts the commands scripts call too; the benchmark's own GETs
  and INFOs are subtracted).
* **W1-io enqueue**: one producer, N calls of each library's one-job API: convoy's
  ``@convoy_task`` ``.enqueue()``, ``Queue.add_job()``, Huey's task call, and a PING loop as a
  yardstick, in slices of 1,000 that alternate between them; commands per add from
  ``INFO commandstats`` around each slice.
* **W3-io latency**: convoy's default worker (``convoy_worker latency``) and Huey's 4
  processes, each started with one job waiting (start to first job), then left idle for 1 s,
  then 2,000 jobs at 200/s; enqueue-to-start from ``time.monotonic_ns()`` taken just before
  the enqueue call and on the job's first line.

Run on its own, it prints the tables to stderr as well as the JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from benchmarks.common import (
    ROOT,
    SERVER_ENV,
    SETTINGS,
    client_for,
    command_calls,
    flush,
    percentile,
    private_redis,
    progress,
    redis_cpu_seconds,
    setup_django,
)
from benchmarks.io_job import COUNTER_KEY, LATENCY_KEY
from benchmarks.proc_tree import ZERO, TreeMeter, Usage

POLL_SECONDS = 0.005  # the drain's counter poll
SAMPLE_SECONDS = 0.25  # the process tree's, for context switches of threads that exit
SLICE = 1000  # W1-io: calls of one API between switches to the next
NOT_THEIRS = ("info", "config|resetstat")  # commands only the benchmark sends
HUEY_LABEL = "huey"
CONVOY_DRAIN = ("--concurrency 16", "--concurrency 32", "--pool processes --concurrency 4")
CONVOY_PROCESSES = ("--processes 2 --concurrency 32", "--processes 4 --concurrency 16")
W3_CONVOY = "--pool processes --concurrency 4"  # the recommended worker for many short jobs


# -- worker commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    """A worker command line: convoy's ``manage.py convoy_worker``, Huey's consumer, or Huey's
    consumer through its Django integration (``manage.py run_huey``: the same consumer, after
    Django's setup)."""

    kind: str  # "convoy", "huey" or "djhuey"
    args: tuple[str, ...] = ()
    queue: str = "bench"  # convoy's queue (Huey's is the one of benchmarks.huey_app)

    @property
    def label(self) -> str:
        if self.kind == "huey":
            return "huey_consumer " + " ".join(self.args)
        if self.kind == "djhuey":
            return "manage.py run_huey " + " ".join(self.args)
        return " ".join(("convoy_worker", self.queue, *self.args))

    @property
    def argv(self) -> list[str]:
        if self.kind == "huey":
            return [
                *(sys.executable, "-m", "huey.bin.huey_consumer", "benchmarks.huey_app.huey"),
                *self.args,
                "-q",  # WARNING and up, like convoy's -v 0 (INFO logs every task)
            ]
        manage = str(ROOT / "manage.py")
        if self.kind == "djhuey":
            return [sys.executable, manage, "run_huey", *self.args, "-q"]
        return [sys.executable, manage, "convoy_worker", self.queue, "-v", "0", *self.args]

    @property
    def settings(self) -> str:
        """The Django settings it runs with (Huey's own consumer ignores them)."""
        return "benchmarks.djhuey_settings" if self.kind == "djhuey" else SETTINGS


def huey_worker(workers: int, django: bool = False) -> Worker:
    return Worker("djhuey" if django else "huey", ("-w", str(workers), "-k", "process"))


def convoy_worker(args: str, queue: str = "bench") -> Worker:
    return Worker("convoy", tuple(shlex.split(args)), queue)


class Command:
    """A worker command started in a session of its own, reaped with ``os.wait4``."""

    def __init__(self, argv: list[str], url: str, settings: str = SETTINGS):
        self.argv = argv
        self.log = tempfile.NamedTemporaryFile(prefix="convoy-bench-io-", suffix=".log")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "REDIS_URL": url}
        self.started_ns = time.monotonic_ns()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nothing of it outlives the run
        )
        self.pid = self.process.pid
        self.meter = TreeMeter(self.pid)
        self.rusage: Any = None

    def check(self) -> None:
        """Fail with the command's output if it has exited."""
        if self.rusage is None and self.process.poll() is None:
            return
        raise RuntimeError(f"worker command exited: {shlex.join(self.argv)}\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> dict[str, float]:
        """SIGTERM (convoy: stop after the running jobs; Huey: interrupt), then reap it.

        Returns its rusage from ``os.wait4``: its own threads and every child it reaped,
        over its whole life."""
        if self.rusage is None:
            if self.process.returncode is None:
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while True:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    os.killpg(self.pid, signal.SIGKILL)  # the group this command leads
                    pid, status, usage = os.wait4(self.pid, 0)
                    break
                time.sleep(0.02)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self.rusage = usage
            try:  # whatever it left behind in its group (run_huey's workers outlive it)
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.log.close()
        return {
            "user": self.rusage.ru_utime,
            "system": self.rusage.ru_stime,
            "voluntary": self.rusage.ru_nvcsw,
            "involuntary": self.rusage.ru_nivcsw,
        }

    def output(self) -> str:
        try:
            self.log.flush()
            return Path(self.log.name).read_text(errors="replace")[-3000:]
        except (OSError, ValueError):
            return "(no log)"

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def convoy_has_processes(url: str) -> bool:
    """Whether this checkout's ``convoy_worker`` accepts ``--processes``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "REDIS_URL": url}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "convoy_worker", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"convoy_worker --help failed:\n{done.stdout}{done.stderr[-3000:]}")
    return "--processes" in done.stdout


# -- W2-io: drain -----------------------------------------------------------------------------


def queue_jobs(worker: Worker, jobs: int) -> None:
    """Put ``jobs`` W2-io jobs in the worker's queue, as its library's enqueue would."""
    if worker.kind == "huey":
        from benchmarks import huey_app

        huey, storage = huey_app.huey, huey_app.huey.storage
        for start in range(0, jobs, SLICE):
            pipe = storage.conn.pipeline(transaction=False)
            for i in range(start, min(start + SLICE, jobs)):
                pipe.lpush(storage.queue_key, huey.serialize_task(huey_app.io_incr.s(i)))
            pipe.execute()
        return
    from benchmarks.tasks import io_incr
    from django_convoy import get_queue

    entries = [
        (io_incr.id_for(i), json.dumps({"args": [i], "kwargs": {}}, separators=(",", ":")))
        for i in range(jobs)
    ]
    get_queue(io_incr.queue).add_encoded(io_incr.name, entries)


def their_commands(after: Counter[str], before: Counter[str], own_gets: int) -> Counter[str]:
    """Commands the worker and its jobs sent between two INFO commandstats."""
    calls = Counter({name: after[name] - before[name] for name in after})
    calls["get"] -= own_gets
    return Counter({k: n for k, n in calls.items() if n > 0 and k not in NOT_THEIRS})


def drain(url: str, worker: Worker, jobs: int) -> dict[str, Any]:
    """One drain of ``jobs`` queued jobs by one fresh worker command."""
    client = client_for(url)
    flush(client)
    queue_jobs(worker, jobs)
    load = os.getloadavg()[0]
    client.config_resetstat()
    calls0, redis0 = command_calls(client), redis_cpu_seconds(client)
    gets = 0
    first: dict[str, Any] | None = None
    timeout = 120 + jobs / 100
    with Command(worker.argv, url, worker.settings) as command:
        last_sample = command.started
        while True:
            done = int(client.get(COUNTER_KEY) or 0)
            gets += 1
            now = time.perf_counter()
            if done >= jobs:
                break
            if first is None and done:
                usage = command.meter.sample()
                calls = command_calls(client)
                first_gets = gets
                redis_cpu = redis_cpu_seconds(client)
                after = int(client.get(COUNTER_KEY) or 0)
                gets += 1
                first = {
                    "at": (now + time.perf_counter()) / 2,
                    "done": (done + after) / 2,
                    "usage": usage,
                    "calls": calls,
                    "gets": first_gets,
                    "redis_cpu": redis_cpu,
                }
                last_sample = time.perf_counter()
            elif now - last_sample >= SAMPLE_SECONDS:
                command.meter.sample()
                last_sample = now
            if now - command.started > timeout:
                raise RuntimeError(f"W2-io: {done} of {jobs} after {timeout:.0f} s")
            command.check()
            time.sleep(POLL_SECONDS)
        ended = now
        usage = command.meter.sample()
        calls = command_calls(client)
        redis_cpu = redis_cpu_seconds(client)
        tree = usage.processes, usage.threads
        lifetime = command.stop()
    count = int(client.get(COUNTER_KEY) or 0)
    if count != jobs:
        raise RuntimeError(f"W2-io: {count} job runs for {jobs} jobs")
    if first is None:  # every job done before the first poll: no steady window
        first = {"at": command.started, "done": 0, "usage": ZERO, "calls": calls0}
        first.update(gets=0, redis_cpu=redis0)
    steady_jobs = jobs - first["done"]
    window: Usage = usage - first["usage"]
    commands = their_commands(calls, first["calls"], gets - first["gets"])
    all_commands = their_commands(calls, calls0, gets)
    return {
        "jobs_per_s": jobs / (ended - command.started),
        "steady_jobs_per_s": steady_jobs / (ended - first["at"]),
        "first_done_s": first["at"] - command.started,
        "worker_user_us_per_job": 1e6 * window.user / steady_jobs,
        "worker_system_us_per_job": 1e6 * window.system / steady_jobs,
        "worker_cpu_us_per_job": 1e6 * (window.user + window.system) / steady_jobs,
        "voluntary_switches_per_job": window.voluntary / steady_jobs,
        "involuntary_switches_per_job": window.involuntary / steady_jobs,
        "switches_per_job": (window.voluntary + window.involuntary) / steady_jobs,
        "worker_cpu_percent": 100 * (window.user + window.system) / (ended - first["at"]),
        "redis_cpu_us_per_job": 1e6 * (redis_cpu - first["redis_cpu"]) / steady_jobs,
        "commands_per_job": sum(commands.values()) / steady_jobs,
        "commands_per_job_from_start": sum(all_commands.values()) / jobs,
        "worker_cpu_us_per_job_from_start": 1e6 * (usage.user + usage.system) / jobs,
        "lifetime_cpu_us_per_job": 1e6 * (lifetime["user"] + lifetime["system"]) / jobs,
        "lifetime_switches_per_job": (lifetime["voluntary"] + lifetime["involuntary"]) / jobs,
        "processes": tree[0],
        "threads": tree[1],
        "load": load,
        "commands": {name: n / steady_jobs for name, n in commands.most_common()},
    }


def measure_drain(url: str, options: argparse.Namespace) -> dict[str, Any]:
    """Every configuration once per round, rounds in a rotated order; medians per config."""
    workers = [huey_worker(options.huey_workers)]
    if options.convoy:
        workers += [convoy_worker(args) for args in options.convoy]
    else:
        workers += [convoy_worker(args) for args in CONVOY_DRAIN]
        if convoy_has_processes(url):
            workers += [convoy_worker(args) for args in CONVOY_PROCESSES]
        else:
            progress("  W2-io: convoy_worker has no --processes yet: those runs are skipped")
    runs: dict[str, list[dict[str, Any]]] = {w.label: [] for w in workers}
    for round_ in range(options.repeat):
        shift = round_ % len(workers)
        for worker in workers[shift:] + workers[:shift]:
            run = drain(url, worker, options.jobs)
            runs[worker.label].append(run)
            progress(
                f"  W2-io {worker.label}: {run['jobs_per_s']:,.0f} jobs/s "
                f"(steady {run['steady_jobs_per_s']:,.0f}), "
                f"worker {run['worker_cpu_us_per_job']:.0f} us/job, "
                f"{run['switches_per_job']:.1f} switches/job, "
                f"{run['commands_per_job']:.1f} commands/job"
            )
    return {
        "jobs": options.jobs,
        "huey": workers[0].label,
        "configs": {label: summary(runs[label]) for label in runs},
    }


# -- W1-io: enqueue ---------------------------------------------------------------------------


def enqueue_round(url: str, jobs: int, run: int) -> dict[str, dict[str, float]]:
    """One producer; slices of ``SLICE`` calls of each API in turn."""
    from benchmarks import huey_app
    from benchmarks.tasks import io_incr
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue(io_incr.queue)
    pinger = redis.Redis.from_url(url)
    apis: dict[str, Callable[[int], object]] = {
        "huey": huey_app.io_incr,
        "enqueue": io_incr.enqueue,
        "add_job": lambda i: queue.add_job(f"w1io-{run}-{i}"),
        "ping": lambda i: pinger.ping(),
    }
    for add in apis.values():  # connections made and scripts loaded off the clock
        add(-1 - run)
    seconds = Counter[str]()
    commands: dict[str, Counter[str]] = {name: Counter() for name in apis}
    names = list(apis)
    for n, start in enumerate(range(0, jobs, SLICE)):
        ids = range(start, min(start + SLICE, jobs))
        for name in names[n % len(names) :] + names[: n % len(names)]:
            add = apis[name]
            before = command_calls(client)
            began = time.perf_counter()
            for i in ids:
                add(i)
            seconds[name] += time.perf_counter() - began
            commands[name] += their_commands(command_calls(client), before, 0)
    pinger.close()
    return {
        name: {
            "adds_per_s": jobs / seconds[name],
            "commands_per_add": sum(commands[name].values()) / jobs,
            "commands": {k: n / jobs for k, n in commands[name].most_common()},
        }
        for name in apis
    }


def measure_enqueue(url: str, options: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for run in range(options.repeat):
        for name, figures in enqueue_round(url, options.jobs, run).items():
            runs.setdefault(name, []).append(figures)
        progress(
            "  W1-io: "
            + ", ".join(f"{name} {runs[name][-1]['adds_per_s']:,.0f}/s" for name in runs)
        )
    return {"jobs": options.jobs, "apis": {name: summary(r) for name, r in runs.items()}}


# -- W3-io: latency ---------------------------------------------------------------------------


def latency_run(url: str, worker: Worker, options: argparse.Namespace) -> dict[str, Any]:
    """Start the worker with one job waiting, let it idle, then pace jobs at it."""
    from benchmarks import huey_app
    from benchmarks.tasks import io_latency

    client = client_for(url)
    flush(client)
    enqueue = huey_app.io_latency if worker.kind == "huey" else io_latency.enqueue
    enqueue(-1)  # the job waiting when the worker starts
    load = os.getloadavg()[0]
    with Command(worker.argv, url, worker.settings) as command:
        deadline = time.monotonic() + 60
        while not client.llen(LATENCY_KEY):
            command.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"W3-io: no first job\n{command.output()}")
            time.sleep(0.002)
        first_ns = int(client.lindex(LATENCY_KEY, 0).split()[1])
        time.sleep(options.settle)
        period = 1 / options.rate
        due = time.monotonic()
        for _ in range(options.latency_jobs):
            due += period
            time.sleep(max(0.0, due - time.monotonic()))
            enqueue(time.monotonic_ns())
        deadline = time.monotonic() + 30
        while client.llen(LATENCY_KEY) < options.latency_jobs + 1:
            command.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"W3-io: jobs did not all start\n{command.output()}")
            time.sleep(0.01)
    pairs = [tuple(map(int, entry.split())) for entry in client.lrange(LATENCY_KEY, 1, -1)]
    samples = [(started - t0) / 1e6 for t0, started in pairs]
    return {
        "p50_ms": percentile(samples, 50),
        "p90_ms": percentile(samples, 90),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        "first_job_s": (first_ns - command.started_ns) / 1e9,
        "load": load,
    }


def measure_latency(url: str, options: argparse.Namespace) -> dict[str, Any]:
    workers = [huey_worker(options.huey_workers), convoy_worker(options.w3_convoy, "latency")]
    runs: dict[str, list[dict[str, Any]]] = {w.label: [] for w in workers}
    for round_ in range(options.repeat):
        for worker in workers[round_ % 2 :] + workers[: round_ % 2]:
            run = latency_run(url, worker, options)
            runs[worker.label].append(run)
            progress(
                f"  W3-io {worker.label}: p50 {run['p50_ms']:.2f} / p99 {run['p99_ms']:.2f} ms, "
                f"first job {run['first_job_s']:.2f} s after start"
            )
    return {
        "jobs": options.latency_jobs,
        "rate": options.rate,
        "huey": workers[0].label,
        "configs": {label: summary(r) for label, r in runs.items()},
    }


# -- summaries and tables ---------------------------------------------------------------------


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the runs, with its range; commands: median per command."""
    result: dict[str, Any] = {"runs": len(runs)}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            names = {name for run in runs for name in run[key]}
            medians = {
                name: statistics.median(run[key].get(name, 0) for run in runs) for name in names
            }
            result[key] = dict(sorted(medians.items(), key=lambda item: -item[1]))
        else:
            values = [run[key] for run in runs]
            result[key] = statistics.median(values)
            result[f"{key}_range"] = [min(values), max(values)]
    return result


def _spread(figures: dict[str, Any], key: str) -> str:
    low, high = figures.get(f"{key}_range", (0, 0))
    if not figures[key] or figures.get("runs", 1) < 2:
        return ""
    return f" +-{50 * (high - low) / figures[key]:.0f}%"


def _ratio(value: float, huey: float) -> str:
    return f"{value / huey:.2f}x" if huey else "-"


def _top(commands: dict[str, float], count: int = 12) -> str:
    shown = [(name, n) for name, n in commands.items() if n >= 0.005][:count]
    return ", ".join(f"{name} {n:.2f}" for name, n in shown)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def tables(result: dict[str, Any]) -> list[str]:
    """One table per workload, each figure beside Huey's with its ratio to Huey's."""
    lines: list[str] = []
    if drain_ := result.get("drain"):
        configs = drain_["configs"]
        huey = configs[drain_["huey"]]
        intro = (
            f"W2-io drain: {drain_['jobs']:,} jobs queued, then one worker command; the job is "
            "one INCR through its own client. jobs/s from the command's start to the last job "
            "done; the rest per job over the steady window (first job done to last): worker "
            "CPU and context switches of the command's process tree, redis-server CPU, Redis "
            f"commands (scripts' included). Medians of {huey['runs']} interleaved runs."
        )
        lines += [*textwrap.wrap(intro, 100), ""]
        rows = [
            (
                "worker command",
                "jobs/s",
                "vs Huey",
                "steady jobs/s",
                "1st done",
                "worker CPU us/job (user+sys)",
                "ctx sw/job (vol+invol)",
                "redis us/job",
                "cmds/job",
            )
        ]
        for label, f in configs.items():
            rows.append(
                (
                    label,
                    f"{f['jobs_per_s']:,.0f}{_spread(f, 'jobs_per_s')}",
                    _ratio(f["jobs_per_s"], huey["jobs_per_s"]),
                    f"{f['steady_jobs_per_s']:,.0f} "
                    f"({_ratio(f['steady_jobs_per_s'], huey['steady_jobs_per_s'])})",
                    f"{f['first_done_s']:.2f} s",
                    f"{f['worker_cpu_us_per_job']:.0f} ({f['worker_user_us_per_job']:.0f}+"
                    f"{f['worker_system_us_per_job']:.0f}; "
                    f"{_ratio(f['worker_cpu_us_per_job'], huey['worker_cpu_us_per_job'])})",
                    f"{f['switches_per_job']:.1f} ({f['voluntary_switches_per_job']:.1f}+"
                    f"{f['involuntary_switches_per_job']:.1f}; "
                    f"{_ratio(f['switches_per_job'], huey['switches_per_job'])})",
                    f"{f['redis_cpu_us_per_job']:.0f} "
                    f"({_ratio(f['redis_cpu_us_per_job'], huey['redis_cpu_us_per_job'])})",
                    f"{f['commands_per_job']:.1f} "
                    f"({_ratio(f['commands_per_job'], huey['commands_per_job'])})",
                )
            )
        lines += _table(rows)
        lines += ["", "Redis commands per job, most first (steady window):"]
        lines += [f"  {label}: {_top(f['commands'])}" for label, f in configs.items()]
        lines.append("")
    if enqueue := result.get("enqueue"):
        apis = enqueue["apis"]
        names = {
            "huey": "Huey: io_incr(i) (its task call enqueues)",
            "enqueue": "convoy: @convoy_task io_incr.enqueue(i)",
            "add_job": "convoy: Queue.add_job(id)",
            "ping": "PING loop (yardstick)",
        }
        intro = (
            f"W1-io enqueue: one producer, {enqueue['jobs']:,} calls of each API, in slices "
            f"of {SLICE:,} alternating between them. Medians of {apis['huey']['runs']} runs."
        )
        lines += [*textwrap.wrap(intro, 100), ""]
        rows = [("API", "adds/s", "vs Huey", "cmds/add", "commands per add")]
        for name, f in apis.items():
            rows.append(
                (
                    names.get(name, name),
                    f"{f['adds_per_s']:,.0f}{_spread(f, 'adds_per_s')}",
                    _ratio(f["adds_per_s"], apis["huey"]["adds_per_s"]),
                    f"{f['commands_per_add']:.1f}",
                    _top(f["commands"], 8),
                )
            )
        lines += _table(rows)
        lines.append("")
    if latency := result.get("latency"):
        configs = latency["configs"]
        huey = configs[latency["huey"]]
        intro = (
            f"W3-io latency: {latency['jobs']:,} jobs at {latency['rate']:.0f}/s to an idle "
            "worker, enqueue call to the job's first line; and command start to the first job "
            f"(one waiting). Medians of {huey['runs']} interleaved runs."
        )
        lines += [*textwrap.wrap(intro, 100), ""]
        rows = [("worker command", "p50 ms", "p99 ms", "max ms", "start to first job")]
        for label, f in configs.items():
            rows.append(
                (
                    label,
                    f"{f['p50_ms']:.2f} ({_ratio(f['p50_ms'], huey['p50_ms'])})",
                    f"{f['p99_ms']:.2f} ({_ratio(f['p99_ms'], huey['p99_ms'])})",
                    f"{f['max_ms']:.1f}",
                    f"{f['first_job_s']:.2f} s ({_ratio(f['first_job_s'], huey['first_job_s'])})",
                )
            )
        lines += _table(rows)
        lines.append("")
    return lines


# -- the script -------------------------------------------------------------------------------


def measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    import huey

    workloads = {"drain": measure_drain, "enqueue": measure_enqueue, "latency": measure_latency}
    result: dict[str, Any] = {"huey_version": huey.__version__}
    for name in options.workloads.split(","):
        progress(f" W-io {name}")
        result[name] = workloads[name](url, options)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds to take the median of")
    parser.add_argument("--jobs", type=int, default=20_000, help="W2-io and W1-io jobs")
    parser.add_argument("--workloads", default="drain,enqueue,latency")
    parser.add_argument(
        "--convoy",
        action="append",
        help="convoy_worker arguments of one W2-io configuration, repeatable, e.g. "
        "--convoy='--processes 4 --concurrency 16' (default: issue 14's list)",
    )
    parser.add_argument("--huey-workers", type=int, default=4, help="huey_consumer -w")
    parser.add_argument(
        "--w3-convoy",
        default=W3_CONVOY,
        help=f"W3-io's convoy_worker arguments (default: {W3_CONVOY!r}, the recommended worker)",
    )
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="W3-io jobs per second")
    parser.add_argument("--settle", type=float, default=1.0, help="W3-io idle seconds")
    options = parser.parse_args()
    standalone = SERVER_ENV not in os.environ
    with private_redis() as url:
        setup_django(url)
        result = measure(url, options)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if standalone:
        print("\n".join(["", *tables(result)]), file=sys.stderr)


if __name__ == "__main__":
    main()
