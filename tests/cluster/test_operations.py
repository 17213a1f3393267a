"""Operating convoy on a cluster or behind Sentinel: deploy checks that ask every server,
scripts a node forgot, wake-ups that go to the worker that can use them, django-redis."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from django_convoy import connection
from django_convoy.checks import check_redis_eviction, check_replication
from django_convoy.connection.cluster import data_nodes
from django_convoy.dashboard.statistics import get_statistics
from tests.admin_helpers import OVERVIEW, job_url, queue_url
from tests.helpers import ThreadedWorker, wait_until


@contextmanager
def configured(world, **config: str):
    """CONFIG SET on every data server of ``world``, undone afterwards."""
    with data_nodes(connection.get_client()) as nodes:
        before = {address: node.config_get(*config) for address, _, node in nodes}
        for _, _, node in nodes:
            for name, value in config.items():
                node.config_set(name, value)
    try:
        yield
    finally:
        with data_nodes(connection.get_client()) as nodes:
            for address, _, node in nodes:
                for name, value in before[address].items():
                    node.config_set(name, value)


def test_deploy_check_names_every_server_without_persistence(world):
    warnings = check_replication()
    servers = 6 if world.kind == "cluster" else 2
    assert [w.id for w in warnings] == ["convoy.W003"] * servers
    assert "keeps no persistence" in warnings[0].msg and "appendonly yes" in warnings[0].hint
    with configured(world, appendonly="yes"):
        assert check_replication() == []


def test_deploy_check_warns_when_wait_replicas_exceeds_the_replicas(world, settings):
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": 2}
    with configured(world, appendonly="yes"):
        warnings = check_replication()
    primaries = 3 if world.kind == "cluster" else 1
    assert [w.id for w in warnings] == ["convoy.W004"] * primaries
    assert "has 1 connected replicas" in warnings[0].msg


def test_eviction_check_asks_every_server(cluster_world):
    with data_nodes(connection.get_client()) as nodes:
        replica = next(node for _, role, node in nodes if role == "replica")
    replica.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert [w.id for w in check_redis_eviction()] == ["convoy.W001"]
    finally:
        replica.config_set("maxmemory-policy", "noeviction")
    assert check_redis_eviction() == []


def test_scripts_a_node_forgot_are_loaded_again(world):
    for name in world.queues:
        world.queue(name).add_job("a")
    with data_nodes(connection.get_client()) as nodes:
        for _, _, node in nodes:
            node.script_flush()
    # Pipelined (the statistics), then one by one (a claim): each node loads what it lacks.
    assert [queue.queued for queue in get_statistics().queues] == [1, 1, 1]
    with data_nodes(connection.get_client()) as nodes:
        for _, _, node in nodes:
            node.script_flush()
    assert all(len(world.queue(name).claim(5, "w").runs) == 1 for name in world.queues)


def test_a_busy_worker_leaves_wake_ups_to_an_idle_one(world):
    name = world.queues[0]
    with ThreadedWorker(*world.queues, concurrency=1), ThreadedWorker(*world.queues, concurrency=1):
        time.sleep(0.3)
        world.queue(name).add_job("long", payload={"sleep": 0.9})
        wait_until(lambda: world.queue(name).stats()["processing"] == 1)
        time.sleep(0.2)  # the busy worker's waiter may still be blocked on the wake list
        added = time.monotonic()
        world.queue(name).add_job("next")
        wait_until(lambda: any(job == "next" for _, job, *_ in world.runs.runs), interval=0.001)
        started = next(run[3] for run in world.runs.runs if run[1] == "next")
    assert started - added < 0.3  # the idle worker took it, not the busy one's 1 s poll


def test_django_redis_sentinel_cache_is_a_connection(sentinel_world, settings):
    world = sentinel_world
    sentinels = [("127.0.0.1", s.port) for s in world.servers.sentinels]
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{world.servers.service}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": sentinels,
            },
        }
    }
    convoy = {key: value for key, value in settings.CONVOY.items() if key != "REDIS_URL"}
    settings.CONVOY = {**convoy, "CONNECTION": "default"}
    queue = world.queue(world.queues[0])
    assert queue.add_job("a").added
    assert [job.id for job in queue.claim(1, "w").runs] == ["a"]
    assert f"Sentinel service '{world.servers.service}'" in connection.endpoint(queue.client)


@pytest.mark.django_db
def test_admin_pages_show_every_queue_from_its_own_node(world, admin_client):
    for n, name in enumerate(world.queues):
        world.queue(name).add_jobs([f"job-{i}" for i in range(n + 1)])
    with ThreadedWorker(world.queues[0], max_jobs=1) as worker:
        wait_until(lambda: worker.processed == 1)
    overview = admin_client.get(OVERVIEW)
    assert overview.status_code == 200
    html = overview.content.decode()
    assert all(f'data-stat="{name}:queued"' in html for name in world.queues)
    page = admin_client.get(queue_url(world.queues[2], "queued")).content.decode()
    assert all(f"job-{i}" in page for i in range(3))
    job = admin_client.get(job_url(world.queues[1], "job-1"))
    assert job.status_code == 200 and "job-1" in job.content.decode()


def test_cancel_progress_and_holds_work_on_each_queues_slot(world):
    """The scripts of issue 17 on a cluster: cancel's fence, progress (and the processing
    tab's MGET of progress keys), a hold_for, each on every queue's own slot."""
    from django_convoy import get_queue
    from django_convoy.context import JobContext

    for name in world.queues:
        queue = get_queue(name)
        queue.add_job("truck", hold_for=30)
        (run,) = queue.claim(1, "w").runs
        JobContext(run.queue, run.id, run.attempt, run.token).set_progress(1, 4, "one")
        assert queue.get_job("truck").progress.done == 1
        assert queue.store.progress_of([("truck", 0)])["truck"].total == 4
        assert queue.cancel("truck") == "processing"
        assert queue.ack([(run.id, run.token)]) == [0]
        queue.add_job("other", hold_for=30)
        (other,) = queue.claim(1, "w").runs
        assert queue.ack([(other.id, other.token)]) == [1]
        assert queue.add_job("other").state == "held"
