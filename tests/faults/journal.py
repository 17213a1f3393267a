"""The execution log: what every run really did, kept where no fault can erase it.

Each worker process (and each child of a ``--pool processes`` worker) appends JSON lines to a
file of its own under ``$CONVOY_FAULTS_JOURNAL``, writing each line with one ``write`` and
``fsync``-ing it before the job goes on: a SIGKILL, a Redis wipe or a partition cannot take back
what was logged. Times are ``CLOCK_MONOTONIC`` nanoseconds, one clock for every process of the
machine (the clock-skew scenario fakes the wall clock only).

A run logs ``start`` when its code begins and ``end`` when it returns or raises. The end time is
read *before* asking Redis whether the run still owns its job, so an ``owner: true`` end proves
the run held its lease for the whole interval ``[start, end]``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "CONVOY_FAULTS_JOURNAL"

_lock = threading.Lock()
_fds: dict[tuple[int, str], int] = {}  # (pid, name) -> fd: each child opens its own file


def append(name: str, record: dict[str, Any]) -> None:
    """Append one record to this process's ``<name>-<pid>.jsonl``, durably."""
    directory = os.environ.get(ENV)
    if not directory:
        return
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    pid = os.getpid()
    with _lock:
        fd = _fds.get((pid, name))
        if fd is None:
            path = Path(directory) / f"{name}-{pid}.jsonl"
            fd = _fds[(pid, name)] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, line)
        os.fsync(fd)


def now_ns() -> int:
    """The journal's clock: monotonic, shared by every process of the machine."""
    return time.monotonic_ns()


@dataclass
class RunRecord:
    """One run of one job id, as its process logged it."""

    queue: str
    id: str
    token: int
    attempt: int
    pid: int  # the process the job ran in: the worker, or a child of it
    start: int  # ns, monotonic
    tag: Any = None
    wall: float = 0.0  # the process's wall clock at the start (skewed on purpose, sometimes)
    end: int | None = None  # None: the process died (or is still running) mid-run
    ok: bool | None = None  # the job's code returned (True) or raised (False)
    owner: bool | None = None  # did the run still own the job at ``end`` (None: unknown)
    worker_pid: int = 0  # the worker's process (``pid``, or the parent of a child running it)
    claimed_ms: int | None = None  # when Redis started it (its claim), if the job asked
    enqueued_ms: int | None = None  # when its job was queued (as claimed_ms: if it asked)

    @property
    def completed(self) -> bool:
        """Returned normally while it still held its lease."""
        return bool(self.ok and self.owner)


def read_records(directory: Path, name: str) -> list[dict[str, Any]]:
    """Every record of every process under ``directory`` for ``name`` (unordered)."""
    records = []
    for path in sorted(Path(directory).glob(f"{name}-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def read_runs(directory: Path) -> list[RunRecord]:
    """Join the start and end records of every run, ordered by start time."""
    runs: dict[tuple[int, str, str, int], RunRecord] = {}
    for rec in read_records(directory, "runs"):
        key = (rec["pid"], rec["q"], rec["id"], rec["tok"])
        if rec["ev"] == "start":
            runs[key] = RunRecord(
                queue=rec["q"],
                id=rec["id"],
                token=rec["tok"],
                attempt=rec["att"],
                pid=rec["pid"],
                worker_pid=rec.get("wpid", rec["pid"]),
                start=rec["t"],
                tag=rec.get("tag"),
                wall=rec.get("wall", 0.0),
                claimed_ms=rec.get("claimed_ms"),
                enqueued_ms=rec.get("enqueued_ms"),
            )
        elif key in runs:
            run = runs[key]
            run.end, run.ok, run.owner = rec["t"], rec["ok"], rec["owner"]
    return sorted(runs.values(), key=lambda run: run.start)
