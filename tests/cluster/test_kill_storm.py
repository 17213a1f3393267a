"""The fault suite's kill storm (tests/faults/storm.py) on a Redis Cluster, a queue on each
primary so that both workers serve queues on all three, and behind Sentinel: workers and jam
guards are real processes (settings.py), and their journal shows what really ran."""

from __future__ import annotations

import json

import pytest

from tests.faults.cluster import Processes
from tests.faults.queues import FAULT_QUEUES
from tests.faults.storm import kill_storm


@pytest.fixture
def processes(world, settings, tmp_path):
    """Processes against ``world``, with the fault queues' settings (one-second leases, no job
    timeout, retries) on its queues, in this process and in theirs alike."""
    settings.CONVOY = {
        **settings.CONVOY,
        "QUEUES": dict.fromkeys(world.queues, FAULT_QUEUES["faults"]),
    }
    started = Processes(
        tmp_path,
        settings.CONVOY["REDIS_URL"],
        settings_module="tests.cluster.settings",
        env={"CONVOY_CLUSTER_SETTING": json.dumps(settings.CONVOY)},
    )
    yield started
    started.close()


def storm(world, processes, **size) -> None:
    if world.kind == "cluster":
        primaries = {world.primary_of(name).port for name in world.queues}
        assert len(primaries) == 3, "the queues must live on every primary"
    queues = [world.queue(name) for name in world.queues]
    # One run at once per queue, three per worker: the storm lasts long enough for a few kills.
    kill_storm(processes, queues, concurrency=1, scenario=f"kill storm on {world.kind}", **size)


def test_kill_storm_loses_nothing_and_never_runs_a_job_twice_at_once(world, processes):
    storm(world, processes, jobs=150, sleep=0.3)


@pytest.mark.slow
def test_soak_kill_storm_thousands_of_jobs(world, processes):
    storm(world, processes, jobs=4000, sleep=0.05)
