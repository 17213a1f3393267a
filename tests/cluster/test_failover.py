"""Cluster events mid-run: a primary killed (failover), a slot migrated. Workers and producers
ride through them, and nothing is reported done that is not."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest

from django_convoy import RedisUnavailable
from django_convoy.exceptions import NotReplicated
from django_convoy.testing.cluster import key_slot
from django_convoy.testing.servers import kill, wait_for
from tests.helpers import ThreadedWorker


class Producer(threading.Thread):
    """Adds fresh ids round-robin to the queues, retrying an add until it is acknowledged."""

    def __init__(self, world):
        super().__init__(daemon=True)
        self.world, self.stop = world, threading.Event()
        self.acknowledged: set[tuple[str, str]] = set()
        self.errors: Counter[str] = Counter()
        self.unexpected: list[BaseException] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            name = self.world.queues[n % len(self.world.queues)]
            try:
                self.world.queue(name).add_job(f"p{n}", payload={"sleep": 0.02})
            except (RedisUnavailable, NotReplicated) as exc:
                self.errors[type(exc).__name__] += 1
                time.sleep(0.05)
                continue  # the same id again: adding twice is safe
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                self.unexpected.append(exc)
                return
            self.acknowledged.add((name, f"p{n}"))
            n += 1
            time.sleep(0.003)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)


def _ran_everything(world, producer) -> bool:
    return producer.acknowledged <= set(world.runs.count())


@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["WAIT-1", "no-WAIT"])
def test_primary_killed_mid_run(world, wait_replicas, caplog, settings):
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": wait_replicas, "WAIT_TIMEOUT_MS": 200}
    victim = world.primary_of(world.queues[0])
    producer = Producer(world)
    with (
        caplog.at_level(logging.INFO, logger="django_convoy"),
        ThreadedWorker(*world.queues),
        ThreadedWorker(*world.queues),
    ):
        producer.start()
        wait_for(lambda: len(world.runs.runs) > 60, 10, "jobs running before the kill")
        kill(victim)
        killed_at = time.monotonic()
        wait_for(lambda: world.failed_over(victim), 30, "a replica to take over")
        took = time.monotonic() - killed_at
        runs_at_failover = len(world.runs.runs)
        victim.start()  # it comes back as a replica of the new primary
        wait_for(world.servers.healthy, 30, "the old primary to rejoin as a replica")
        wait_for(lambda: len(world.runs.runs) > runs_at_failover + 60, 20, "work after it")
        producer.finish()
        wait_for(lambda: _ran_everything(world, producer), 30, "every acknowledged job to run")
    assert not producer.unexpected, producer.unexpected
    ran = world.runs.count()
    lost = producer.acknowledged - set(ran)
    print(
        f"\n{world.kind} failover in {took:.1f} s, WAIT_REPLICAS={wait_replicas}: "
        f"{len(producer.acknowledged)} acknowledged adds, {len(lost)} lost, "
        f"{sum(n > 1 for n in ran.values())} run twice, producer errors {dict(producer.errors)}"
    )
    assert not lost
    if wait_replicas:
        assert not world.runs.overlapping()  # claims were replicated before their runs began
    assert "unreachable" in caplog.text  # logged, as an outage, not a crash
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["no-WAIT", "WAIT-1"])
def test_slot_migrated_mid_run(cluster_world, wait_replicas, caplog, settings):
    world = cluster_world
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": wait_replicas}
    moving = world.queues[0]
    slot = key_slot(f"{{{moving}}}")
    home = world.primary_of(moving)
    target = world.primary_of(world.queues[1])
    producer = Producer(world)
    try:
        with caplog.at_level(logging.INFO, logger="django_convoy"), ThreadedWorker(*world.queues):
            producer.start()
            wait_for(lambda: len(world.runs.runs) > 60, 10, "jobs running before the move")
            moved = world.servers.migrate_slot(slot, target, pause=0.05)
            assert moved >= 5  # the queue's keys, one MIGRATE each
            assert world.primary_of(moving) is target
            runs_after_move = len(world.runs.runs)
            wait_for(lambda: len(world.runs.runs) > runs_after_move + 60, 20, "work after it")
            producer.finish()
            wait_for(lambda: _ran_everything(world, producer), 30, "every job to run")
    finally:
        producer.finish()
        world.servers.migrate_slot(slot, home)
    assert not producer.unexpected, producer.unexpected
    ran = world.runs.count()
    assert producer.acknowledged == {job for job in ran if job[1].startswith("p")}
    assert all(n == 1 for n in ran.values())  # no failover: nothing lost, nothing run twice
    assert not world.runs.overlapping()
    print(
        f"\nslot {slot} moved with {moved} keys, WAIT_REPLICAS={wait_replicas}: "
        f"{len(producer.acknowledged)} acknowledged adds, producer errors {dict(producer.errors)}"
    )
