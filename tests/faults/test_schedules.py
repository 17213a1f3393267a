"""Scenario 7: periodic jobs fire exactly once per tick, however many schedulers run.

Real processes against a private redis-server each: ``convoy_worker`` (which runs a scheduler
beside its worker) and ``convoy_scheduler``, with the schedules of ``schedule_settings.py``.

- 5 schedulers fire a 1-second schedule while one of them is SIGKILLed every 5 s (and started
  again) and another has its clock 30 s ahead: every tick of the window fires exactly once (the
  jobs are journalled; a tick fired twice would show as two first attempts of its id), none is
  skipped. The soak runs it for a minute (``make soak``).
- ``overlap`` "skip" with a job slower than its interval: no two runs at once.
- ``catch_up`` after every scheduler was away: "latest" adds the latest missed tick once,
  "none" adds none; the ticks still on time fire in both.
- Redis SIGKILLed and restarted with ``appendfsync always``: no tick lost.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from django_convoy.schedules.scheduler import tick_job_id
from django_convoy.store.keys import schedule_keys, workers_registry_key

from . import checker
from .cluster import PREFIX, Cluster, in_parallel, outcome
from .test_clock_skew import SKEW, libfaketime, skewed

SETTINGS = "tests.faults.schedule_settings"
QUEUE = "faults-side"
SECOND = 1000


def start(root: Path, *schedules: str, redis_args: tuple[str, ...] = ()) -> Cluster:
    cluster = Cluster(root, redis_args=redis_args)
    cluster.settings_module = SETTINGS
    cluster.extra_env["CONVOY_TEST_SCHEDULES"] = ",".join(schedules)
    return cluster


def redis_ms(cluster: Cluster) -> int:
    seconds, micros = cluster.client().time()
    return seconds * 1000 + micros // 1000


def tick_of(job_id: str) -> int:
    """The tick (ms) in a tick's job id, ``<name>@<UTC time>Z``."""
    moment = datetime.strptime(job_id.split("@", 1)[1], "%Y-%m-%dT%H:%M:%SZ")
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def live_ids(cluster: Cluster, name: str) -> set[str]:
    """The ids of the schedule's jobs Redis still holds (queued, running, retrying, failed)."""
    queue = cluster.queue(QUEUE)
    return {
        job_id for job_id in checker.states(queue.client, queue.keys) if job_id.startswith(name)
    }


def scheduler_up(proc) -> bool:
    return "scheduler firing" in proc.output()


# -- 5 schedulers, SIGKILLs and a skewed clock -----------------------------------------------


def storm(root: Path, seconds: float, every: float = 5.0) -> dict:
    cluster = start(root, "storm")
    try:
        return storm_scenario(cluster, seconds, every)
    finally:
        cluster.close()


def storm_scenario(cluster: Cluster, seconds: float, every: float) -> dict:
    queue = cluster.queue(QUEUE)
    roles = {
        "worker-a": lambda: cluster.worker(QUEUE, name="worker-a"),
        "worker-b": lambda: cluster.worker(QUEUE, name="worker-b"),
        "scheduler-a": lambda: cluster.manage("scheduler-a", "convoy_scheduler"),
        "scheduler-b": lambda: cluster.manage("scheduler-b", "convoy_scheduler"),
    }
    procs = {role: make() for role, make in roles.items()}
    # The fifth: a worker whose wall clock runs 30 s ahead. It is never killed.
    skew = cluster.worker(QUEUE, name="skewed", **skewed(+SKEW))
    registry = workers_registry_key(PREFIX)
    cluster.wait_for(lambda: queue.client.zcard(registry) == 3, 60, "three workers up")
    cluster.wait_for(
        lambda: all(scheduler_up(procs[r]) for r in ("scheduler-a", "scheduler-b")), 60,
        "both convoy_scheduler processes up",
    )  # fmt: skip
    window_start = redis_ms(cluster)
    victims = itertools.cycle(roles)
    kills = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        time.sleep(min(every, max(0.0, ends - time.monotonic())))
        if time.monotonic() >= ends:
            break
        role = next(victims)
        procs[role].reap()  # SIGKILL, its whole group
        kills += 1
        procs[role] = roles[role]()
    window_end = redis_ms(cluster)
    time.sleep(3.0)  # the last ticks' jobs run; jammed ones are recovered (1 s leases)
    cluster.stop_all()
    stopped_at = redis_ms(cluster)  # no tick after this may have fired: it was not due

    runs = [run for run in cluster.runs() if run.id.startswith("storm@")]
    fired = {run.id for run in runs} | live_ids(cluster, "storm@")
    first_attempts = Counter(run.id for run in runs if run.attempt == 1)
    due = range(window_start - window_start % SECOND + SECOND, window_end - SECOND, SECOND)
    expected = {tick_job_id("storm", tick) for tick in due}
    state = queue.client.hget(schedule_keys(PREFIX, QUEUE).state, "storm") or ""
    skew_log = skew.output()
    return {
        "window_s": round((window_end - window_start) / 1000, 1),
        "schedulers": 5,
        "sigkills": kills,
        "clock_faked_by": "libfaketime" if libfaketime() else "time.time hook",
        "ticks_due": len(expected),
        "ticks_fired": len(expected & fired),
        "skipped": len(expected - fired),
        "fired_twice": sum(count > 1 for count in first_attempts.values()),
        "fired_early": sum(tick_of(job_id) > stopped_at for job_id in fired),
        "ticks_added_by_the_skewed_worker": skew_log.count("added job storm@"),
        "last_tick_state": state.split("|")[2] if state else "",
    }


def assert_every_tick_fired_once(figures: dict) -> None:
    assert figures["ticks_due"] >= figures["window_s"] - 2
    assert figures["skipped"] == 0
    assert figures["fired_twice"] == 0
    assert figures["fired_early"] == 0
    assert figures["sigkills"] >= 2


def test_five_schedulers_with_kills_and_a_skewed_clock_fire_every_tick_once(tmp_path):
    figures = storm(tmp_path, seconds=16)
    checker.report("7 five schedulers, one SIGKILLed every 5 s, one clock +30 s", **figures)
    assert_every_tick_fired_once(figures)


@pytest.mark.slow
def test_soak_five_schedulers_for_a_minute_fire_every_tick_once(tmp_path):
    figures = storm(tmp_path, seconds=60)
    checker.report("7 soak: five schedulers for a minute, SIGKILLs every 5 s", **figures)
    assert_every_tick_fired_once(figures)


# -- overlap, catch_up, a Redis restart: side by side ---------------------------------------


def overlap(root: Path) -> dict:
    cluster = start(root, "slow")
    try:
        worker = cluster.worker(QUEUE, name="worker")  # CONCURRENCY 2: room for an overlap
        queue = cluster.queue(QUEUE)
        cluster.wait_for(lambda: queue.client.zcard(workers_registry_key(PREFIX)), 60, "worker up")
        time.sleep(10)
        cluster.stop_all()
        runs = [run for run in cluster.runs() if run.id.startswith("slow@")]
        live, zombie = checker.overlaps(runs)
        at_once = [
            (a.id, b.id)
            for a, b in itertools.combinations(runs, 2)
            if a.start < (b.end or 1 << 62) and b.start < (a.end or 1 << 62)
        ]
        return {
            "runs": len(runs),
            "runs_at_once": len(at_once),
            "ticks_skipped": worker.output().count("skipped: its last run"),
            "live_overlaps": len(live) + len(zombie),
        }
    finally:
        cluster.close()


def catch_up(root: Path) -> dict:
    cluster = start(root, "latest", "none")
    try:
        first = cluster.manage("scheduler", "convoy_scheduler")
        cluster.wait_for(lambda: scheduler_up(first), 60, "the scheduler up")
        time.sleep(3)
        first.signal(signal.SIGTERM)
        first.wait(30)
        state = cluster.client().hmget(schedule_keys(PREFIX, QUEUE).state, "latest", "none")
        last = {
            name: int(s.split("|")[0]) for name, s in zip(("latest", "none"), state, strict=True)
        }
        time.sleep(9)  # every scheduler away: past the 5 s a 1-second tick may be late
        second = cluster.manage("scheduler-again", "convoy_scheduler")
        cluster.wait_for(lambda: scheduler_up(second), 60, "the scheduler up again")
        time.sleep(2)
        cluster.stop_all()
        fired = {name: sorted(tick_of(i) for i in live_ids(cluster, f"{name}@")) for name in last}
        gap = {name: [t for t in ticks if t > last[name]] for name, ticks in fired.items()}
        return {
            "gap_s": round((min(gap["none"]) - last["none"]) / 1000, 1) if gap["none"] else 0,
            "fired_after_gap_latest": len(gap["latest"]),
            "fired_after_gap_none": len(gap["none"]),
            "caught_up_latest": [t for t in gap["latest"] if t not in gap["none"]],
            "first_after_gap_none": gap["none"][0] if gap["none"] else None,
            "hole_none_s": round((gap["none"][0] - last["none"]) / 1000, 1) if gap["none"] else 0,
        }
    finally:
        cluster.close()


def redis_restart(root: Path) -> dict:
    always = ("--appendonly", "yes", "--appendfsync", "always")
    cluster = start(root, "restart", redis_args=always)
    try:
        schedulers = [cluster.manage(f"scheduler-{i}", "convoy_scheduler") for i in range(2)]
        cluster.wait_for(lambda: all(map(scheduler_up, schedulers)), 60, "schedulers up")
        window_start = redis_ms(cluster)
        time.sleep(3)
        down_from = redis_ms(cluster)
        cluster.kill_redis()
        time.sleep(3)
        cluster.start_redis()
        down_until = redis_ms(cluster)
        time.sleep(5)
        window_end = redis_ms(cluster)
        cluster.stop_all()
        fired = {tick_of(job_id) for job_id in live_ids(cluster, "restart@")}
        due = range(window_start - window_start % 2000 + 2000, window_end - 2000, 2000)
        return {
            "ticks_due": len(due),
            "ticks_lost": len(set(due) - fired),
            "ticks_due_while_redis_was_down": sum(down_from < t <= down_until for t in due),
            "of_which_fired_after": sum(down_from < t <= down_until and t in fired for t in due),
        }
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    roots = {name: tmp_path_factory.mktemp(name) for name in ("overlap", "catch_up", "restart")}
    return in_parallel(
        {
            "overlap": lambda: overlap(roots["overlap"]),
            "catch_up": lambda: catch_up(roots["catch_up"]),
            "restart": lambda: redis_restart(roots["restart"]),
        }
    )


def test_overlap_skip_never_runs_two_of_a_schedules_jobs_at_once(scenarios):
    figures = outcome(scenarios, "overlap")
    checker.report("7 overlap skip: a 2.5 s job every 1 s", **figures)
    assert figures["runs_at_once"] == 0 and figures["live_overlaps"] == 0
    assert 2 <= figures["runs"] <= 5  # one per ~3 s: a tick after each run ends
    assert figures["ticks_skipped"] >= 4


def test_catch_up_latest_adds_the_latest_missed_tick_and_none_adds_none(scenarios):
    figures = outcome(scenarios, "catch_up")
    checker.report("7 catch_up after every scheduler was away 9 s", **figures)
    assert figures["hole_none_s"] >= 3  # missed ticks were not added
    assert figures["fired_after_gap_latest"] == figures["fired_after_gap_none"] + 1
    (caught,) = figures["caught_up_latest"]
    assert caught == figures["first_after_gap_none"] - SECOND


def test_a_redis_restart_with_aof_loses_no_tick(scenarios):
    figures = outcome(scenarios, "restart")
    checker.report("7 Redis SIGKILLed for 3 s (appendfsync always), a 2 s schedule", **figures)
    assert figures["ticks_due"] >= 4
    assert figures["ticks_lost"] == 0
