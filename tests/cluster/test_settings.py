"""Cluster and Sentinel settings, their checks, and what holds without any cluster running.

These need no cluster: they run in the default suite.
"""

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ClusterDownError, TryAgainError

from django_convoy import RedisUnavailable, connection, get_queue
from django_convoy.conf import KEY_PREFIX, QUEUE_NAME, find_problems, get_config
from django_convoy.exceptions import NotReplicated
from django_convoy.store.keys import error_log_key, queue_keys, task_result_key
from django_convoy.testing.cluster import key_slot
from django_convoy.topology import Topology, parse_url, topology_from_settings

QUEUES = {"QUEUES": {"default": {}}}


def test_cluster_url_with_credentials_and_tls():
    topology = parse_url(
        "rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/0"
        "?ssl_cert_reqs=none&socket_timeout=5"
    )
    assert topology == Topology(
        "cluster",
        (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)),
        options={
            "username": "app",
            "password": "s@cret",
            "ssl_cert_reqs": "none",
            "socket_timeout": 5.0,
            "ssl": True,
        },
    )


def test_sentinel_url_names_service_and_database_and_the_sentinels_own_password():
    topology = parse_url(
        "redis+sentinel://:pw@s1:26379,s2/mymaster/3?sentinel_password=spw&socket_timeout=2"
    )
    assert (topology.kind, topology.nodes, topology.service) == (
        "sentinel",
        (("s1", 26379), ("s2", 26379)),
        "mymaster",
    )
    assert topology.options == {"password": "pw", "db": 3, "socket_timeout": 2.0}
    assert topology.sentinel_options == {"password": "spw"}
    assert parse_url("rediss+sentinel://s1/m").sentinel_options == {"ssl": True}


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis+cluster:///0", "non-empty list"),
        ("redis+cluster://h:70x0", "the port must be a number"),
        ("redis+cluster://h:7000/2", "a Redis Cluster has only 0"),
        ("redis+cluster://h:7000?db=1", "a Redis Cluster has only 0"),
        ("redis+sentinel://h:26379", "must end with /<service>"),
        ("redis+sentinel://h:26379/m/x", "must end with /<service>"),
        ("redis+cluster://h:7000?socket_timeout=soon", "invalid value for 'socket_timeout'"),
    ],
)
def test_bad_topology_url_is_refused(url, message):
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_settings_forms_give_the_same_topology_as_urls():
    assert topology_from_settings(None, cluster_nodes=["h1:7000", ("h2", 7001)]) == Topology(
        "cluster", (("h1", 7000), ("h2", 7001))
    )
    sentinel = topology_from_settings(
        None, sentinels=["s1"], sentinel_service="m", sentinel_options={"password": "x"}
    )
    assert sentinel == Topology("sentinel", (("s1", 26379),), "m", {}, {"password": "x"})
    assert topology_from_settings("redis://h:6379/0") is None


@pytest.mark.parametrize(
    "convoy, code, message",
    [
        (
            {"REDIS_URL": "redis://h", "CLUSTER_NODES": ["h:7000"]},
            "convoy.E003",
            "sets REDIS_URL and CLUSTER_NODES; set one",
        ),
        (
            {"CLUSTER_NODES": ["h:7000"], "SENTINELS": ["h"], "SENTINEL_SERVICE": "m"},
            "convoy.E003",
            "sets CLUSTER_NODES and SENTINELS; set one",
        ),
        ({"REDIS_URL": "cluster://h:7000"}, "convoy.E003", "is not a Redis URL"),
        ({"CLUSTER_NODES": "h:7000"}, "convoy.E014", "non-empty list of 'host:port'"),
        ({"CLUSTER_NODES": [("h", "7000")]}, "convoy.E014", "use 'host:port' or a (host, port)"),
        ({"REDIS_URL": "redis+cluster://h:7000/1"}, "convoy.E014", "has only 0"),
        ({"SENTINELS": ["h:26379"]}, "convoy.E015", "SENTINEL_SERVICE'] must name"),
        ({"REDIS_URL": "redis://h", "SENTINEL_SERVICE": "m"}, "convoy.E015", "without CONVOY"),
        ({"REDIS_URL": "redis://h", "SENTINEL_OPTIONS": {}}, "convoy.E015", "no Sentinel"),
        (
            {"SENTINELS": ["h"], "SENTINEL_SERVICE": "m", "SENTINEL_OPTIONS": "pw"},
            "convoy.E015",
            "must be a dict, not str",
        ),
        ({"REDIS_URL": "redis+sentinel://h"}, "convoy.E015", "must end with /<service>"),
        ({"REDIS_URL": "redis://h", "WAIT_REPLICAS": -1}, "convoy.E016", "integer >= 0"),
        ({"REDIS_URL": "redis://h", "WAIT_TIMEOUT_MS": 0}, "convoy.E016", "integer >= 1"),
        ({"REDIS_URL": "redis://h", "WAIT_REPLICAS": True}, "convoy.E016", "not True"),
    ],
)
def test_bad_cluster_and_sentinel_settings_are_reported(convoy, code, message):
    problems = find_problems({**convoy, **QUEUES})
    assert [p.id for p in problems] == [code]
    assert message in problems[0].msg


@pytest.mark.parametrize(
    "convoy",
    [
        {"REDIS_URL": "redis+cluster://h1:7000,h2:7000"},
        {"REDIS_URL": "rediss+sentinel://u:p@s1:26379,s2:26379/mymaster/0"},
        {"CLUSTER_NODES": ["h1:7000"], "REDIS_OPTIONS": {"password": "x", "ssl": True}},
        {"SENTINELS": [("s1", 26379)], "SENTINEL_SERVICE": "m", "SENTINEL_OPTIONS": {"ssl": True}},
        {"REDIS_URL": "redis://h", "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 50},
    ],
)
def test_good_cluster_and_sentinel_settings_pass(convoy):
    assert find_problems({**convoy, **QUEUES}) == []


def test_config_carries_the_topology_and_the_wait(settings):
    settings.CONVOY = {"REDIS_URL": "redis+cluster://h1:7000", "WAIT_REPLICAS": 1, **QUEUES}
    config = get_config()
    assert config.topology == Topology("cluster", (("h1", 7000),))
    assert (config.wait_replicas, config.wait_timeout_ms) == (1, 500)


@given(
    prefix=st.from_regex(KEY_PREFIX, fullmatch=True),
    queue=st.from_regex(QUEUE_NAME, fullmatch=True),
)
def test_every_valid_name_gives_one_hash_tag_per_queue(prefix, queue):
    """E004 and E007 are the hash-tag checks: a valid prefix or name cannot hold a brace, so
    the tag of every key of a queue is exactly the queue's name, and all share its slot."""
    keys = [
        *queue_keys(prefix, queue),
        error_log_key(prefix, queue, "2025-01-01"),
        task_result_key(prefix, queue, "r1"),
    ]
    start = keys[0].index("{")
    assert keys[0][start + 1 : keys[0].index("}", start)] == queue
    assert {key_slot(key) for key in keys} == {key_slot(f"{{{queue}}}")}


@pytest.mark.parametrize("name", ["a{b", "a}b", "{x}", ""])
def test_names_with_braces_are_refused(name):
    problems = find_problems({"REDIS_URL": "redis://h", "KEY_PREFIX": name or "p", **QUEUES})
    problems += find_problems({"REDIS_URL": "redis://h", "QUEUES": {name: {}}})
    assert {p.id for p in problems} == ({"convoy.E004", "convoy.E007"} if name else {"convoy.E007"})


@pytest.mark.parametrize("error", [ClusterDownError("CLUSTERDOWN"), TryAgainError("TRYAGAIN")])
def test_cluster_changing_under_a_call_is_reported_as_unavailable(redis_client, error):
    with pytest.raises(RedisUnavailable, match=type(error).__name__):
        with connection.reporting_unavailable(redis_client):
            raise error


def test_unreachable_cluster_is_unavailable_and_names_its_nodes(settings):
    settings.CONVOY = {**settings.CONVOY, "REDIS_URL": "redis+cluster://:pw@127.0.0.1:1"}
    with pytest.raises(RedisUnavailable, match="Redis Cluster of 127.0.0.1:1") as error:
        get_queue("default")
    assert "pw" not in str(error.value)


def test_wait_replicas_without_replicas_refuses_adds_and_warns_on_worker_writes(settings, caplog):
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 5}
    queue = get_queue("default")
    with pytest.raises(NotReplicated, match=r"only 0 of 1 replicas .* Adding it again is safe"):
        queue.add_job("a")
    assert queue.get_job("a").state == "queued"  # the primary has it
    with caplog.at_level(logging.WARNING, logger="django_convoy"):
        (run,) = queue.claim(1, "w").runs  # a worker's write: warned, not refused
        assert queue.ack([(run.id, run.token)]) == [1]
    assert caplog.text.count("only 0 of 1 replicas confirmed") == 2
    assert queue.stats()["processed_total"] == 1  # reads do not wait


def test_wait_is_sent_on_the_writes_connection(settings, redis_client):
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 5}
    redis_client.config_resetstat()
    queue = get_queue("default")
    with pytest.raises(NotReplicated):
        queue.add_job("a")
    queue.get_job("a")
    assert redis_client.info("commandstats")["cmdstat_wait"]["calls"] == 1  # not after reads


def test_reporter_retries_only_what_it_could_not_report(monkeypatch):
    from django_convoy.worker import Worker
    from django_convoy.worker.state import ActiveRun, Outcome

    worker = Worker(["default", "monsterTrucks"])
    runs = {}
    for name in ("default", "monsterTrucks"):
        get_queue(name).add_job("a")
        (runs[name],) = get_queue(name).claim(1, worker.id).runs
    batch = [Outcome(ActiveRun(run), None, None, 0.01) for run in runs.values()]
    trucks = worker.queues["monsterTrucks"]

    def away(*args, **kwargs):
        raise RedisUnavailable("Redis at somewhere is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(trucks, "ack", away)
        patched.setattr(trucks, "ack_and_claim", away)
        with pytest.raises(RedisUnavailable):
            worker.reporter.report(batch)
    assert [o.active.run.queue for o in batch] == ["monsterTrucks"]  # default's ack went through
    worker.reporter.report(batch)
    assert worker.processed == 2  # each acked once: no refused second ack
    assert batch == []


def test_deregistering_needs_no_transaction(redis_client):
    from django_convoy.worker import Worker

    worker = Worker(["default"])
    worker.keeper._heartbeat({})
    assert redis_client.zcard("convoytest:{workers}:registry") == 1
    redis_client.config_resetstat()
    worker.keeper.deregister()
    assert redis_client.zcard("convoytest:{workers}:registry") == 0
    assert "cmdstat_multi" not in redis_client.info("commandstats")


def test_resume_is_one_script(redis_client):
    queue = get_queue("default")
    queue.pause()
    redis_client.config_resetstat()
    queue.resume()
    stats = redis_client.info("commandstats")
    assert "cmdstat_multi" not in stats and "cmdstat_evalsha" in stats
    assert redis_client.llen(queue.keys.wake) == 1 and not queue.is_paused()


def test_a_plain_server_is_its_own_only_data_node(redis_client):
    from django_convoy.connection.cluster import data_nodes

    with data_nodes(connection.get_client()) as nodes:
        ((name, role, node),) = nodes
    assert role == "primary" and node.ping()
    assert name.endswith(str(redis_client.connection_pool.connection_kwargs["port"]))


def test_unix_socket_url_still_works(tmp_path, settings):
    from django_convoy.testing.servers import RedisServer

    server = RedisServer(unix_socket=tmp_path / "r.sock").start()
    try:
        settings.CONVOY = {**settings.CONVOY, "REDIS_URL": server.url}
        assert get_queue("default").add_job("a").added
        assert "unix socket" in connection.endpoint(connection.get_client())
    finally:
        server.stop()
