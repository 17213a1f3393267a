"""Scenario 5: Redis dies (SIGKILL: no shutdown, no last fsync) and comes back 3 s later.

Three persistence settings, run side by side, each with its own redis-server, a producer adding
unique ids a little faster than the worker runs them (so a backlog waits in Redis), a worker and
a ``convoy_jamguard``:

``always``    ``appendonly yes``, ``appendfsync always``: no acknowledged add may be lost.
``everysec``  ``appendfsync everysec``: the loss is measured. A killed redis-server has normally
              written every acknowledged command to the AOF file already (the kernel keeps it:
              only the fsync is once a second), so expect 0; the setting's real risk, the last
              second lost when the *machine* dies, is beyond what a test on a shared machine
              can do. (Redis may also hold writes back for up to 2 s while an fsync is slow.)
``none``      no persistence: Redis comes back empty. The backlog is gone; the worker and the jam
              guard must say so loudly (the queue's data marks went back), not carry on silently.

In every case the producer gets a clear error naming host and port while Redis is down, and the
worker and the jam guard reconnect with a backoff: their connection attempts are counted by a
client-layer hook, to tell a backoff from a busy loop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from . import checker
from .cluster import Cluster, in_parallel, outcome

PERSISTENCE = {
    "always": ("--appendonly", "yes", "--appendfsync", "always"),
    "everysec": ("--appendonly", "yes", "--appendfsync", "everysec"),
    "none": (),
}
DOWN = 3.0


def wipe_alarms(log: str) -> list[str]:
    """Lines saying Redis lost the queue's data."""
    return [
        line
        for line in log.splitlines()
        if "faults" in line and "lost" in line.lower() and "data" in line.lower()
    ]


def restart(root: Path, persistence: str, cycles: int = 1) -> dict:
    cluster = Cluster(root, redis_args=PERSISTENCE[persistence])
    try:
        return restart_scenario(cluster, cycles)
    finally:
        cluster.close()


def restart_scenario(cluster: Cluster, cycles: int = 1) -> dict:
    queue = cluster.queue("faults")
    out, stop = cluster.root / "producer.json", cluster.root / "stop-producing"
    producer = cluster.producer(
        "producer",
        *("--out", str(out), "--unique", "job", "--until", str(stop), "--pause", "0.02"),
        *("--payload", json.dumps({"sleep": 0.1})),
    )
    worker = cluster.worker("faults", name="worker", CONVOY_FAULT_CONNECTS="1")
    guard = cluster.jamguard("faults", name="jamguard", CONVOY_FAULT_CONNECTS="1")
    cluster.wait_for(lambda: queue.stats()["processed_total"] >= 20, 60, "the worker got going")
    backlogs, outages = [], []
    for _ in range(cycles):
        time.sleep(1.0)
        stats = queue.stats()
        backlogs.append(stats["queued"] + stats["processing"] + stats["jammed"])
        cluster.kill_redis()
        down_at = time.monotonic()
        time.sleep(DOWN)
        cluster.start_redis()
        outages.append((down_at, time.monotonic()))
        time.sleep(1.5)
    stop.touch()
    assert producer.wait(60) == 0, producer.output()

    def drained() -> bool:
        stats = queue.stats()
        return stats["queued"] + stats["processing"] + stats["jammed"] + stats["scheduled"] == 0

    cluster.wait_for(drained, 60, "the backlog run after the restart")
    time.sleep(0.5)  # let late reports land
    cluster.stop_all()

    summary = json.loads(out.read_text())
    accepted = [job_id for job_id, _ in summary["accepted"]]
    runs = cluster.runs()
    present = set(checker.states(queue.client, queue.keys))
    acked = [job_id for _, job_id, _ in checker.acks(worker.output())]
    lost = checker.lost(accepted, runs, present, acked)
    window = [
        c for c in cluster.connects() if any(a * 1e9 <= c["t"] <= b * 1e9 for a, b in outages)
    ]
    attempts = {proc.name: sum(c["pid"] == proc.pid for c in window) for proc in (worker, guard)}
    errors = summary["errors"]
    up_at = outages[0][1]
    back = [run.end / 1e9 - up_at for run in runs if run.completed and run.end / 1e9 > up_at]
    return {
        "port": cluster.port,
        "outages": cycles,
        "backlog_at_kill": backlogs if cycles > 1 else backlogs[0],
        "acknowledged_adds": len(accepted),
        "acknowledged_jobs_lost": len(lost),
        "reruns": len(runs) - len({run.id for run in runs}),
        "live_overlaps": len(checker.overlaps(runs)[0]),
        "add_errors_while_down": len(errors),
        "add_error_types": sorted({e[2] for e in errors}),
        "add_error_example": errors[0][3] if errors else "",
        "add_error_seconds_max": round(max((e[1] for e in errors), default=0), 2),
        "connection_attempts_while_down": attempts,
        "first_job_done_after_restart_s": round(min(back, default=float("nan")), 2),
        "wipe_alarms_worker": len(wipe_alarms(worker.output())),
        "wipe_alarms_jamguard": len(wipe_alarms(guard.output())),
        "worker_alarm_example": (wipe_alarms(worker.output()) or [""])[0][:160],
        "left_behind": checker.count_left_behind(queue.client, queue.keys),
    }


@pytest.fixture(scope="module")
def restarts(tmp_path_factory):
    """The three persistence settings side by side; setting -> figures."""
    roots = {p: tmp_path_factory.mktemp(p) for p in PERSISTENCE}  # not in threads
    return in_parallel({p: lambda p=p: restart(roots[p], p) for p in PERSISTENCE})


def figures_of(restarts, persistence: str) -> dict:
    result = outcome(restarts, persistence)
    checker.report(f"5 Redis SIGKILLed and restarted after {DOWN:.0f} s ({persistence})", **result)
    return result


def assert_survived_the_outage(figures: dict) -> None:
    assert figures["add_errors_while_down"] > 0
    assert figures["add_error_types"] == ["RedisUnavailable"]
    assert f"127.0.0.1:{figures['port']}" in figures["add_error_example"]
    # A backoff, not a busy loop: a few attempts a second per process at most.
    for attempts in figures["connection_attempts_while_down"].values():
        assert 0 < attempts <= 20 * DOWN * figures["outages"]
    # The worker came back by itself, within its longest wait between tries (2 s) and a job.
    assert figures["first_job_done_after_restart_s"] < 5
    assert figures["live_overlaps"] == 0
    assert figures["left_behind"] == 0


def test_appendfsync_always_loses_no_acknowledged_job(restarts):
    figures = figures_of(restarts, "always")
    assert_survived_the_outage(figures)
    assert figures["acknowledged_jobs_lost"] == 0
    assert figures["wipe_alarms_worker"] == figures["wipe_alarms_jamguard"] == 0


def test_appendfsync_everysec_loss_is_measured(restarts):
    figures = figures_of(restarts, "everysec")
    assert_survived_the_outage(figures)


def test_no_persistence_wipe_is_detected_and_logged_loudly(restarts):
    figures = figures_of(restarts, "none")
    assert_survived_the_outage(figures)
    assert figures["wipe_alarms_worker"] >= 1
    assert "CRITICAL" in figures["worker_alarm_example"]
    assert figures["wipe_alarms_jamguard"] >= 1


@pytest.mark.slow
def test_soak_ten_restarts_with_appendfsync_always_lose_no_acknowledged_job(tmp_path):
    figures = restart(tmp_path, "always", cycles=10)
    checker.report(f"5 soak: Redis SIGKILLed 10 times, {DOWN:.0f} s down each (always)", **figures)
    assert_survived_the_outage(figures)
    assert figures["acknowledged_jobs_lost"] == 0
    assert figures["wipe_alarms_worker"] == figures["wipe_alarms_jamguard"] == 0
