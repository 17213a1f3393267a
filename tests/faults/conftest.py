"""Fixtures of the fault-injection suite, and the table of figures at the end of the run."""

from __future__ import annotations

import itertools

import pytest
import redis

from django_convoy.testing.servers import RedisServer

from .checker import REPORTED
from .cluster import Cluster


@pytest.fixture(scope="module")
def model_client(tmp_path_factory):
    """A client of a redis-server of the module's own, for the model tests."""
    server = RedisServer(directory=tmp_path_factory.mktemp("model-redis")).start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()
    server.stop()


@pytest.fixture
def make_cluster(tmp_path):
    """Start clusters (private redis-server + processes); all are torn down after the test."""
    clusters: list[Cluster] = []
    numbers = itertools.count()

    def make(**options) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{next(numbers)}", **options)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


@pytest.fixture
def cluster(make_cluster) -> Cluster:
    """One cluster with a non-persistent redis-server."""
    return make_cluster()


def pytest_terminal_summary(terminalreporter) -> None:
    if not REPORTED:
        return
    terminalreporter.section("convoy fault-injection figures")
    for figures in REPORTED:
        terminalreporter.write_line(figures.show())
