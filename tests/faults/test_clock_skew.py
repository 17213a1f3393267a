"""Scenario 6: worker clocks off by +30 s and -30 s change nothing.

Every deadline convoy keeps (leases, due times, the jam guard's "expired") is read from Redis's
clock (``TIME`` inside the scripts); a worker's own clock only measures durations (monotonic).
So two workers whose wall clocks disagree by a minute, and a jam guard 30 s ahead, must run
jobs that outlive their lease (and are renewed) without a single jam or re-run.

The clocks are skewed with libfaketime when it is installed (``apt-get install faketime``),
which fakes every wall-clock call of the process; otherwise ``time.time`` is shifted inside the
processes by a hook (``hooks.py``). The monotonic clock stays true in both, so that the journal's
times can still be compared across processes.
"""

from __future__ import annotations

import glob
import time

from django_convoy.store.keys import workers_registry_key

from . import checker
from .cluster import PREFIX, Cluster
from .queues import FAULT_QUEUES

LEASE = FAULT_QUEUES["faults"]["LEASE"]
SKEW = 30
JOBS = 16


def libfaketime() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    return found[0] if found else None


def skewed(offset: int) -> dict[str, str]:
    """Environment that sets a process's wall clock ``offset`` seconds off."""
    library = libfaketime()
    if library:
        return {
            "LD_PRELOAD": library,
            "FAKETIME": f"{offset:+d}s",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "CONVOY_FAULT_SLEEP_FIX": "1",  # see hooks.py: time.sleep under libfaketime
        }
    return {"CONVOY_FAULT_CLOCK_OFFSET": str(offset)}


def test_skewed_worker_clocks_cause_no_jam_and_no_rerun(cluster: Cluster):
    queue = cluster.queue("faults")
    ids = [f"skew-{i}" for i in range(JOBS)]
    ahead = cluster.worker("faults", name="ahead", **skewed(+SKEW))
    behind = cluster.worker("faults", name="behind", **skewed(-SKEW))
    guard = cluster.jamguard("faults", name="jamguard", **skewed(+SKEW))
    registry = workers_registry_key(PREFIX)
    cluster.wait_for(lambda: queue.client.zcard(registry) == 2, 60, "both workers up")
    # Each job outlives its lease: it is kept only by renewals, judged by the Redis clock.
    queue.add_jobs([(job_id, {"sleep": 1.5 * LEASE}) for job_id in ids])
    cluster.wait_for(lambda: queue.stats()["processed_total"] == JOBS, 60, "every job done")
    time.sleep(2 * LEASE)  # jam guards get their chance to (wrongly) recover something
    cluster.stop_all()

    runs = cluster.runs()
    wall_minus_monotonic = time.time() - time.monotonic()  # the true clocks, here

    def offset(run) -> float:
        return run.wall - (wall_minus_monotonic + run.start / 1e9)

    offsets = {
        name: round(sum(map(offset, rs)) / len(rs) if rs else 0, 1)
        for name, rs in (
            ("ahead", [r for r in runs if r.worker_pid == ahead.pid]),
            ("behind", [r for r in runs if r.worker_pid == behind.pid]),
        )
    }
    logs = ahead.output() + behind.output() + guard.output()
    jams = [line for line in logs.splitlines() if "jammed" in line or "requeued" in line]
    live, zombie = checker.overlaps(runs)
    checker.report(
        f"6 skewed clocks (workers {SKEW:+d} s and {-SKEW:+d} s, jam guard {SKEW:+d} s)",
        clock_faked_by="libfaketime" if libfaketime() else "time.time hook",
        wall_clock_offsets_seen_by_jobs=offsets,
        jobs=JOBS,
        runs=len(runs),
        jams=len(jams),
        renewals_refused=checker.refusals(logs)["renew"],
        live_overlaps=len(live),
        zombie_overlaps=len(zombie),
        lost=len(checker.lost(ids, runs, set())),
    )
    # The skew was real: the jobs themselves saw their process's wall clock off.
    assert abs(offsets["ahead"] - SKEW) <= 1 and abs(offsets["behind"] + SKEW) <= 1, offsets
    assert {r.pid for r in runs} == {ahead.pid, behind.pid}, "both workers ran jobs"
    assert len(runs) == JOBS and all(run.completed for run in runs)
    assert not jams
    assert not live and not zombie
