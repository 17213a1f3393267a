"""CPU and context switches of a worker command and every process it starts (Linux /proc).

A worker command may be one process with many threads (``convoy_worker``), a parent with
child processes (``--pool processes``, ``--processes N``, Huey's ``-k process``), and children
may exit and be replaced while it runs. How each figure is kept whole:

* **CPU** is read per process from ``/proc/<pid>/stat``: utime and stime cover every thread the
  process ever had, dead ones too, and cutime and cstime cover every child it has reaped (and
  what those children had reaped in turn). So at any instant, the sum of utime + cutime (and
  of stime + cstime) over the processes of the tree alive then is the tree's whole CPU since
  it started, exits included; it is read at the window's two ends. Resolution: one clock tick
  (10 ms) per field and process.
* **Context switches** are only kept per thread (``/proc/<pid>/task/<tid>/status``; the
  process's own status shows its main thread alone), and those of a thread or a child that
  exits are not added anywhere this process can read. So the tree is sampled every few
  hundred ms while it runs, each thread's last count is kept after it is gone, and a window's
  figure is the sum's growth: exact for threads alive throughout, short of what a thread did
  between its last sample and its exit.
* **Lifetime**: when the command is reaped, ``os.wait4`` gives its rusage: CPU and context
  switches of all its threads and of every child it reaped, from start-up to shutdown (a
  cross-check, not a window).

Processes are found by their parent pid (a scan of /proc: this kernel has no
``/proc/<pid>/task/<tid>/children``). A descendant that a dead parent left to init would drop
out of the tree; the worker commands measured here reap their children.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SWITCHES = re.compile(r"^(voluntary|nonvoluntary)_ctxt_switches:\s+(\d+)", re.M)


@dataclass(frozen=True)
class Usage:
    """Cumulative figures of a process tree at one instant (seconds, counts)."""

    user: float
    system: float
    voluntary: int
    involuntary: int
    processes: int
    threads: int

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.user - other.user,
            self.system - other.system,
            self.voluntary - other.voluntary,
            self.involuntary - other.involuntary,
            self.processes,
            self.threads,
        )


ZERO = Usage(0.0, 0.0, 0, 0, 0, 0)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the state (3rd) on


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, by their parent pids."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat(int(name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


class TreeMeter:
    """Samples of one process tree; ``sample()`` returns its cumulative ``Usage``."""

    def __init__(self, root: int):
        self.root = root
        self.switches: dict[tuple[int, int], tuple[int, int]] = {}  # last seen, kept after exit

    def sample(self) -> Usage:
        user = system = 0
        processes = threads = 0
        for pid in descendants(self.root):
            fields = _stat(pid)
            if not fields:
                continue
            processes += 1
            # utime, stime, cutime, cstime are fields 14-17 of stat: 11-14 from the state on.
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                except OSError:
                    continue
                counts = dict(_SWITCHES.findall(status))
                if counts:
                    threads += 1
                    self.switches[(pid, int(tid))] = (
                        int(counts["voluntary"]),
                        int(counts["nonvoluntary"]),
                    )
        return Usage(
            user / CLOCK_TICKS,
            system / CLOCK_TICKS,
            sum(v for v, _ in self.switches.values()),
            sum(n for _, n in self.switches.values()),
            processes,
            threads,
        )
