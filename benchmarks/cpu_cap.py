"""Hold a process to a share of one core with a cgroup CPU quota (CFS bandwidth control).

``cluster_scaling.py --redis-cpu`` puts each redis-server it starts in a group of its own, so
that on a small shared machine every primary behaves like a slower machine of its own: Redis,
not the workers' Python, is what runs out. The kernel gives the group ``quota`` microseconds of
CPU in every ``period`` and then stops it until the next period, so the period is kept short
(10 ms, longer only where the kernel's 1 ms minimum quota requires it) for the stalls to stay
short too. While capped, a group also gets a high scheduling weight: other people's work on
the machine must not keep a primary from the share it is allowed.

cgroup v1 (a hierarchy with the ``cpu`` controller: ``cpu.cfs_period_us``, ``cpu.cfs_quota_us``)
is used if there is one, else cgroup v2 (``cpu.max``). Groups are created beside this process's
own, named ``convoy-bench-<pid>-<n>``, and removed by ``CpuCaps.close()``; groups left by a run
that was killed outright are removed by the next run once their owner is gone.
"""

from __future__ import annotations

import errno
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 10_000
MIN_QUOTA_US = 1_000  # the kernel refuses less
# A capped group's scheduling weight: ten times a plain process's (v1 cpu.shares 1024, v2
# cpu.weight 100), so that it gets its quota promptly while other work keeps both cores busy,
# as a machine of its own would. Lifted, it goes back to the default and competes as usual.
WEIGHT_FACTOR = 10
GROUP_PREFIX = "convoy-bench-"


class CgroupUnavailable(RuntimeError):
    """No cgroup CPU controller this process can create groups in."""


def period_for(percent: float) -> tuple[int, int]:
    """The (period, quota) in microseconds for ``percent`` of one core."""
    if not 0 < percent <= 100:
        raise ValueError(f"a CPU cap is a percentage of one core in (0, 100], not {percent}")
    period = max(PERIOD_US, math.ceil(MIN_QUOTA_US * 100 / percent))
    return period, round(period * percent / 100)


@dataclass(frozen=True)
class Hierarchy:
    """Where this process's cpu cgroup is, and which interface it speaks."""

    version: int  # 1 or 2
    home: Path  # this process's own group: new groups go beside it, processes go back to it

    def describe(self) -> str:
        return f"cgroup v{self.version} at {self.home}"


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup mount."""
    out = []
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, kind, options, *_ = line.split()
            if kind in ("cgroup", "cgroup2"):
                out.append((point, kind, set(options.split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """This process's group per v1 controller list ("cpu,cpuacct") and for v2 ("")."""
    paths = {}
    with open("/proc/self/cgroup") as own:
        for line in own:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


def find_hierarchy() -> Hierarchy:
    """The cpu cgroup to work in, or raise CgroupUnavailable saying what is missing."""
    mounts, own = _mounts(), _own_paths()
    seen = []
    for point, kind, options in mounts:
        if kind == "cgroup" and "cpu" in options:
            path = next((p for c, p in own.items() if "cpu" in c.split(",")), "/")
            home = Path(point) / path.lstrip("/")
            if os.access(home, os.W_OK) and (home / "cpu.cfs_quota_us").exists():
                return Hierarchy(1, home)
            seen.append(f"cgroup v1 cpu at {home} (not writable)")
    for point, kind, _ in mounts:
        if kind != "cgroup2":
            continue
        root = Path(point)
        controllers = (root / "cgroup.controllers").read_text().split()
        if "cpu" not in controllers:
            seen.append(f"cgroup v2 at {root} (no cpu controller: {' '.join(controllers)})")
            continue
        home = root / own.get("", "/").lstrip("/")
        if os.access(home, os.W_OK):
            return Hierarchy(2, home)
        seen.append(f"cgroup v2 at {home} (not writable)")
    raise CgroupUnavailable(
        "--redis-cpu needs a cgroup CPU controller this user can write: a cgroup v1 hierarchy "
        "with 'cpu' (e.g. /sys/fs/cgroup/cpu, with cpu.cfs_quota_us) or cgroup v2 with 'cpu' "
        "in cgroup.controllers (cpu.max); usually that means running as root outside a "
        f"restricted container. Found: {'; '.join(seen) or 'no cgroup mounts'}."
    )


class CpuCap:
    """One group holding its processes to a share of one core (or not at all: ``lift()``)."""

    def __init__(self, hierarchy: Hierarchy, name: str):
        self.hierarchy = hierarchy
        self.path = hierarchy.home / name
        self.path.mkdir()
        if hierarchy.version == 2 and not (self.path / "cpu.max").exists():
            self._enable_v2_controller()
        self.period_us, self.quota_us = PERIOD_US, -1

    def _enable_v2_controller(self) -> None:
        try:
            (self.hierarchy.home / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            self.path.rmdir()
            raise CgroupUnavailable(
                f"cannot enable the cpu controller for groups under {self.hierarchy.home} "
                f"({exc.strerror}): in cgroup v2 a group that holds processes cannot delegate "
                "it; run the benchmark from a group of its own (e.g. systemd-run --scope)"
            ) from exc

    def add(self, pid: int) -> None:
        """Move ``pid`` (all its threads) into this group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self, percent: float) -> None:
        """Hold the group to ``percent`` of one core from now on, and let it have that share
        before other work."""
        self.period_us, self.quota_us = period_for(percent)
        if self.hierarchy.version == 1:
            # Unlimited first: the kernel checks each write against the other value.
            (self.path / "cpu.cfs_quota_us").write_text("-1")
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            (self.path / "cpu.shares").write_text(str(1024 * WEIGHT_FACTOR))
        else:
            (self.path / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")
            (self.path / "cpu.weight").write_text(str(100 * WEIGHT_FACTOR))

    def lift(self) -> None:
        """Let the group use as much CPU as it can get, on the same terms as other work."""
        self.quota_us = -1
        if self.hierarchy.version == 1:
            (self.path / "cpu.cfs_quota_us").write_text("-1")
            (self.path / "cpu.shares").write_text("1024")
        else:
            (self.path / "cpu.max").write_text(f"max {self.period_us}")
            (self.path / "cpu.weight").write_text("100")

    def throttling(self) -> tuple[int, int, float]:
        """(periods, periods throttled, seconds throttled) so far, from ``cpu.stat``."""
        stat = dict(
            line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line
        )
        if "throttled_usec" in stat:
            seconds = int(stat["throttled_usec"]) / 1e6
        else:
            seconds = int(stat.get("throttled_time", 0)) / 1e9
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0)), seconds

    def remove(self) -> None:
        """Move any process left back to where it came from and delete the group."""
        _remove_group(self.path, self.hierarchy.home)


def _remove_group(path: Path, home: Path, attempts: int = 50) -> None:
    for attempt in range(attempts):
        try:
            for pid in (path / "cgroup.procs").read_text().split():
                try:
                    (home / "cgroup.procs").write_text(pid)
                except ProcessLookupError:
                    pass  # it exited meanwhile
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY: a process is still on its way out of the group.
            if exc.errno != errno.EBUSY or attempt == attempts - 1:
                raise
            time.sleep(0.02)


def _owner_alive(name: str) -> bool:
    """Whether the run that made group ``name`` is still running (a zombie is not)."""
    try:
        with open(f"/proc/{int(name.removeprefix(GROUP_PREFIX).split('-')[0])}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (ValueError, IndexError, FileNotFoundError):
        return False


class CpuCaps:
    """The groups of one run: created on demand, all removed by ``close()``."""

    def __init__(self) -> None:
        self.hierarchy = find_hierarchy()
        self._made: list[CpuCap] = []
        for stale in self.hierarchy.home.glob(f"{GROUP_PREFIX}*"):
            if stale.is_dir() and not _owner_alive(stale.name):
                _remove_group(stale, self.hierarchy.home)

    def new(self, pid: int) -> CpuCap:
        """A new, unlimited group holding ``pid``."""
        cap = CpuCap(self.hierarchy, f"{GROUP_PREFIX}{os.getpid()}-{len(self._made)}")
        self._made.append(cap)
        cap.add(pid)
        return cap

    def close(self) -> None:
        """Remove every group this run made (their processes go back where they came from)."""
        errors = []
        for cap in self._made:
            try:
                cap.remove()
            except OSError as exc:
                errors.append(f"{cap.path}: {exc}")
        self._made.clear()
        if errors:
            raise RuntimeError("could not remove cgroups: " + "; ".join(errors))
