"""Profile convoy under load with py-spy: the worker draining (W2), or a producer adding (W1).

    python -m benchmarks.profile worker --concurrency 32
    python -m benchmarks.profile producer

py-spy samples the process from outside (no code change, little overhead); the collapsed
stacks go to ``--out`` and a summary is printed: time per thread, then the functions with the
most samples in them (inclusive) and at the top of the stack (self). Pass ``--gil`` to count
only samples that hold the GIL, i.e. where the process spends its one core of Python.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import (
    ROOT,
    SERVER_ENV,
    WorkerProcess,
    client_for,
    flush,
    private_redis,
    setup_django,
)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[dev]'")
    return found


def spy_command(out: Path, rate: int, gil: bool) -> list[str]:
    command = [py_spy(), "record", "--format", "raw", "--output", str(out), "--rate", str(rate)]
    command += ["--threads", "--nonblocking"]
    return command + (["--gil"] if gil else [])


def profile_worker(url: str, options: argparse.Namespace) -> None:
    """Drain ``options.jobs`` jobs (no-op, or one INCR of their own) with py-spy attached."""
    from benchmarks.tasks import io_incr, noop
    from django_convoy import get_queue

    client = client_for(url)
    flush(client)
    queue = get_queue("bench")
    queue.pause()
    task = io_incr if options.job == "io" else noop
    args = "[0]" if options.job == "io" else "[]"
    queue.add_encoded(
        task.name, [(f"p-{i}", '{"args":' + args + ',"kwargs":{}}') for i in range(options.jobs)]
    )
    with WorkerProcess(url, "bench", options.concurrency) as worker:
        worker.wait_registered(client)
        spy = subprocess.Popen(
            [*spy_command(options.out, options.rate, options.gil), "--pid", str(worker.pid)]
        )
        time.sleep(1)  # py-spy attaches
        started = time.perf_counter()
        queue.resume()
        while int(client.hget(queue.keys.stats, "processed") or 0) < options.jobs:
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        spy.wait(timeout=30)
    print(f"drained {options.jobs:,} jobs in {seconds:.2f} s ({options.jobs / seconds:,.0f}/s)")


def profile_producer(url: str, options: argparse.Namespace) -> None:
    """Run W1 (add_job x jobs) under py-spy."""
    command = [sys.executable, "-m", "benchmarks.w1_add_job", "--repeat", "1"]
    command += ["--jobs", str(options.jobs)]
    subprocess.run(
        [*spy_command(options.out, options.rate, options.gil), "--", *command],
        cwd=ROOT,
        env={**__import__("os").environ, SERVER_ENV: url},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def summarise(path: Path, top: int, focus: str) -> None:
    """Print time per thread and the heaviest functions of py-spy's collapsed stacks."""
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if focus and not any(focus in frame for frame in frames):
            continue
        n = int(count)
        total += n
        threads[frames[0]] += n
        names = [_short(frame) for frame in frames[1:]]
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    print(f"\n{total} samples{f' under {focus!r}' if focus else ''}")
    print("\nby thread:")
    for name, n in threads.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\ntop {top} functions, {title}:")
        for name, n in counter.most_common(top):
            print(f"  {100 * n / total:5.1f}%  {name}")


def _short(frame: str) -> str:
    """'func (path/to/module.py:12)' -> 'func (module.py)': aggregate over lines."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rsplit('/', 1)[-1].rstrip(')')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=("worker", "producer"))
    parser.add_argument("--jobs", type=int, default=None, help="default: 60,000 / 20,000")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument(
        "--job", choices=("noop", "io"), default="noop", help="io: one INCR of its own (W2-io)"
    )
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--top", type=int, default=30)
    options = parser.parse_args()
    options.jobs = options.jobs or (60_000 if options.target == "worker" else 20_000)
    options.out = options.out or Path(f"/tmp/convoy-profile-{options.target}.txt")
    with private_redis() as url:
        setup_django(url)
        if options.target == "worker":
            profile_worker(url, options)
        else:
            profile_producer(url, options)
    summarise(options.out, options.top, "" if options.target == "worker" else "Queue.add_job (")


if __name__ == "__main__":
    main()
