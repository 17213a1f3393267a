"""A real Redis Cluster and a real Sentinel group, started once per session, for the tests here.

The cluster has 3 primaries and 3 replicas; the Sentinel group a primary, a replica and 3
sentinels. Both run the redis-server binary the rest of the suite uses, on free loopback
ports, and are the only servers these tests flush, kill or restart. Each test gets a ``World``:
the ``CONVOY`` setting pointed at one of them (``world`` runs every test against both), queues
spread over all the cluster's primaries, and a processor per queue that records its runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from django_convoy import current_job, decorators, get_queue
from django_convoy.queue import Queue
from django_convoy.testing.cluster import LocalCluster, key_slot
from django_convoy.testing.sentinel import LocalSentinelGroup
from django_convoy.testing.servers import RedisServer, wait_for

PREFIX = "ct"
SHARDS = 3  # LocalCluster gives primary n the slots [n * 5461, (n + 1) * 5461)
QUEUE_SETTINGS = {"CONCURRENCY": 4, "LEASE": 1.0, "JOB_TIMEOUT": 1.0, "MAX_JAMS": 5}


def spread_names(per_shard: int = 1) -> list[str]:
    """Queue names whose slots fall to each of the cluster's primaries in turn."""
    found: dict[int, list[str]] = {shard: [] for shard in range(SHARDS)}
    n = 0
    while any(len(names) < per_shard for names in found.values()):
        name = f"q{n}"
        shard = min(key_slot(f"{{{name}}}") // (16384 // SHARDS), SHARDS - 1)
        if len(found[shard]) < per_shard:
            found[shard].append(name)
        n += 1
    return [found[shard][i] for i in range(per_shard) for shard in range(SHARDS)]


QUEUES = spread_names()
# Fixtures that start servers (the worlds ask for them by name, at run time).
SERVER_FIXTURES = {
    "cluster_servers",
    "sentinel_servers",
    "world",
    "cluster_world",
    "sentinel_world",
}


def pytest_collection_modifyitems(config, items):
    """Tests that start clusters run with ``make test-cluster`` (over a minute on 2 cores)."""
    if os.environ.get("CONVOY_CLUSTER_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="starts a Redis Cluster and a Sentinel group: make test-cluster")
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster_servers():
    servers = LocalCluster(primaries=3, replicas=1).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def sentinel_servers():
    servers = LocalSentinelGroup(replicas=1, sentinels=3).start()
    yield servers
    servers.stop()


@dataclass
class Runs:
    """What the test processors ran: (queue, id, token, started, ended) per run."""

    runs: list[tuple[str, str, str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def processor(self, queue: str):
        def process(job_id: str, payload: Any) -> None:
            token, started = current_job().token, time.monotonic()
            if isinstance(payload, dict) and payload.get("sleep"):
                time.sleep(payload["sleep"])
            with self.lock:
                self.runs.append((queue, job_id, token, started, time.monotonic()))

        return process

    def count(self) -> Counter[tuple[str, str]]:
        """Runs per (queue, id)."""
        with self.lock:
            return Counter((queue, job_id) for queue, job_id, *_ in self.runs)

    def overlapping(self) -> list[tuple[str, str]]:
        """(queue, id) pairs that ran on two workers at the same time."""
        by_job: dict[tuple[str, str], list[tuple[float, float]]] = {}
        with self.lock:
            for queue, job_id, _, started, ended in self.runs:
                by_job.setdefault((queue, job_id), []).append((started, ended))
        return [
            job
            for job, spans in by_job.items()
            if any(b[0] < a[1] for a, b in zip(sorted(spans), sorted(spans)[1:], strict=False))
        ]


@dataclass
class World:
    """One topology as the test sees it: its servers, its queues, what ran."""

    kind: str  # "cluster" | "sentinel"
    servers: Any  # LocalCluster | LocalSentinelGroup
    queues: list[str]
    runs: Runs

    def queue(self, name: str) -> Queue:
        return get_queue(name)

    def primary_of(self, queue: str) -> RedisServer:
        """The server holding ``queue`` now."""
        if self.kind == "cluster":
            return self.servers.primary_of(f"{{{queue}}}")
        return self.servers.server(self.servers.current_primary_port())

    def failed_over(self, old: RedisServer) -> bool:
        """Whether another server has taken over from the killed primary ``old``."""
        if self.kind == "cluster":
            return old.port not in self.servers.primary_ports() and self.servers.healthy(
                replicas=False
            )
        return self.servers.current_primary_port() != old.port

    def heal(self) -> None:
        """Restart whatever a test stopped and wait until every replica is in sync again."""
        stopped = [server for server in self.servers.servers if server.process is None]
        for server in stopped:
            server.start()
        wait_for(self.servers.healthy, 60, f"the {self.kind} to heal")


def make_world(request, settings, monkeypatch, kind: str, **convoy: Any) -> World:
    servers = request.getfixturevalue(f"{kind}_servers")
    world = World(kind, servers, list(QUEUES), Runs())
    if not servers.healthy():
        world.heal()
    servers.flush()
    settings.CONVOY = {
        "REDIS_URL": servers.url,
        "KEY_PREFIX": PREFIX,
        "QUEUES": {name: dict(QUEUE_SETTINGS) for name in world.queues},
        **convoy,
    }
    for name in world.queues:
        monkeypatch.setitem(decorators._processors, name, world.runs.processor(name))
    request.addfinalizer(lambda: world.heal() if not servers.healthy() else None)
    return world


@pytest.fixture(params=["cluster", "sentinel"])
def world(request, settings, monkeypatch) -> World:
    """Each test twice: against the Redis Cluster and against the Sentinel group."""
    return make_world(request, settings, monkeypatch, request.param)


@pytest.fixture
def cluster_world(request, settings, monkeypatch) -> World:
    return make_world(request, settings, monkeypatch, "cluster")


@pytest.fixture
def sentinel_world(request, settings, monkeypatch) -> World:
    return make_world(request, settings, monkeypatch, "sentinel")
