"""django_convoy.testing, as a project's own tests use it: drain() runs queued jobs in-process
through the real scripts, and the fixture and the mixin give each test an empty private Redis
without ever flushing one they did not start."""

import os
import subprocess
import sys
import textwrap
import time
import unittest
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import SimpleTestCase, TestCase, override_settings

from django_convoy import get_queue
from django_convoy.testing import (
    ConvoyTestMixin,
    DrainResult,
    RedisServer,
    drain,
    drain_all,
    flush,
    private_redis,
    pytest_plugin,
    redis_server,
)
from tests.djtasks.config import AVAILABLE as TASKS_FRAMEWORK
from tests.jobs import tasks

ROOT = Path(__file__).resolve().parents[1]
SUITE_URL = os.environ["CONVOY_TEST_REDIS_URL"]
# The plugin's fixture, as `pytest_plugins = ["django_convoy.testing.pytest_plugin"]` in a
# conftest would give it (the last test enables it that way, in a pytest of its own).
convoy_redis = pytest_plugin.convoy_redis


def log() -> list[str]:
    """What the test tasks recorded (in the suite's server, whichever server convoy uses)."""
    import redis

    with redis.Redis.from_url(SUITE_URL, decode_responses=True) as client:
        return client.lrange(tasks.LOG_KEY, 0, -1)


# -- drain ------------------------------------------------------------------------------------


def test_drain_runs_queued_tasks_in_order_and_reports_them():
    tasks.record.enqueue("a")
    tasks.record.enqueue("b")

    result = drain("default")

    assert result == DrainResult(processed=("rec-a", "rec-b"))
    assert [entry.split()[:2] for entry in log()] == [
        ["start", "rec-a"],
        ["end", "rec-a"],
        ["start", "rec-b"],
        ["end", "rec-b"],
    ]
    assert get_queue("default").stats()["queued"] == 0


def test_drain_of_an_empty_queue_runs_nothing():
    assert drain("default") == DrainResult()
    assert not drain("default")


def test_same_id_enqueued_twice_runs_once():
    first = tasks.record.enqueue("twice")
    again = tasks.record.enqueue("twice")

    assert (first.added, again.added) == (True, False)
    assert drain("default").processed == ("rec-twice",)
    assert [entry.split()[0] for entry in log()] == ["start", "end"]


def test_id_is_released_when_its_run_is_drained():
    tasks.record.enqueue("again")
    drain("default")

    assert get_queue("default").get_job("rec-again").state == "done"  # free; its result kept
    assert tasks.record.enqueue("again").added


def test_failing_job_is_reported_as_failed_with_its_error():
    job_id = tasks.boom.enqueue("nope").id

    result = drain("default")

    assert (result.processed, result.failed, result.retried) == ((), (job_id,), ())
    assert result.errors == {job_id: "builtins.ValueError: nope"}
    assert get_queue("default").get_job(job_id).state == "failed"


def test_job_of_a_retrying_queue_is_reported_as_retried_then_runs_when_due():
    job_id = tasks.flaky.enqueue("f", 1).id

    first = drain("retrying")
    assert (first.processed, first.failed, first.retried) == ((), (), (job_id,))
    assert first.errors == {job_id: "builtins.RuntimeError: flaky f failing attempt 1"}
    assert get_queue("retrying").get_job(job_id).state == "scheduled"

    time.sleep(0.2)  # RETRY_BACKOFF 0.05: the retry is due within 50 ms
    assert drain("retrying") == DrainResult(processed=(job_id,))


def test_drain_runs_plain_jobs_through_the_queue_processor():
    get_queue("default").add_job("plain-1", payload={"wheels": 4})

    assert drain("default").processed == ("plain-1",)
    [entry] = log()
    event, job_id, _token, attempt, extra = entry.split(" ", 4)
    assert (event, job_id, attempt, extra) == (
        "plain",
        "plain-1",
        "1",
        "{'payload': {'wheels': 4}}",
    )


@pytest.mark.skipif(not TASKS_FRAMEWORK, reason="no Tasks framework: pip install -e '.[tasks]'")
def test_drain_runs_django_tasks_and_records_their_results():
    from tests.djtasks import tasks as django_tasks

    ok = django_tasks.add.enqueue(2, 3)
    bad = django_tasks.failing_task_value_error.enqueue()

    result = drain("default")

    assert (result.processed, result.failed) == ((ok.id,), (bad.id,))
    ok.refresh()
    bad.refresh()
    assert (ok.status.name, ok.return_value) == ("SUCCESSFUL", 5)
    assert bad.status.name == "FAILED"


def test_drain_stops_after_max_jobs():
    for key in "abc":
        tasks.record.enqueue(key)

    assert drain("default", max_jobs=2).processed == ("rec-a", "rec-b")
    assert get_queue("default").stats()["queued"] == 1
    assert drain("default").processed == ("rec-c",)


def test_drain_rejects_a_negative_max_jobs():
    with pytest.raises(ValueError, match="max_jobs must be None or an int >= 0, not -1"):
        drain("default", max_jobs=-1)


def test_drain_leaves_jobs_that_are_not_due_yet_scheduled():
    get_queue("default").add_job("later", delay=30)

    assert drain("default") == DrainResult()
    assert get_queue("default").get_job("later").state == "scheduled"


def test_drain_of_a_paused_queue_runs_nothing():
    queue = get_queue("default")
    queue.add_job("waits")
    queue.pause()

    assert drain("default") == DrainResult()
    assert queue.stats()["queued"] == 1


def test_drain_all_runs_every_configured_queue():
    tasks.record.enqueue("a")
    flaky_id = tasks.flaky.enqueue("g", 0).id

    results = drain_all()

    assert set(results) == set(settings.CONVOY["QUEUES"])
    assert results["default"].processed == ("rec-a",)
    assert results["retrying"].processed == (flaky_id,)
    assert not any(results[name] for name in results if name not in ("default", "retrying"))


@pytest.fixture(params=["default", "postgres"])
def database(request, django_db_blocker):
    """A database alias holding a transaction open: SQLite's, or the machine's PostgreSQL."""
    alias = request.param
    with django_db_blocker.unblock():
        try:
            connections[alias].ensure_connection()
        except Exception as exc:
            if alias == "default":
                raise
            pytest.skip(f"PostgreSQL is not reachable: {exc}")
        yield alias
        connections[alias].close()


def test_drain_leaves_the_callers_transaction_open(database):
    with transaction.atomic(using=database):
        with connections[database].cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE drained (n integer)")
            cursor.execute("INSERT INTO drained VALUES (1)")
        tasks.record.enqueue("in-a-transaction")

        assert drain("default").processed == ("rec-in-a-transaction",)
        with connections[database].cursor() as cursor:
            cursor.execute("SELECT n FROM drained")
            assert cursor.fetchall() == [(1,)]
        transaction.set_rollback(True, using=database)


# -- the private server -----------------------------------------------------------------------


def test_fixture_points_convoy_at_a_private_server(convoy_redis):
    assert convoy_redis.url != SUITE_URL
    assert settings.CONVOY["REDIS_URL"] == convoy_redis.url
    assert settings.CONVOY["KEY_PREFIX"] == "convoytest"  # the rest of CONVOY is kept
    port = get_queue("default").client.connection_pool.connection_kwargs["port"]
    assert port == convoy_redis.port


def test_fixture_runs_drain_against_its_server(convoy_redis, redis_client):
    tasks.record.enqueue("private")

    assert drain("default").processed == ("rec-private",)
    assert redis_client.keys("convoytest:*") == []  # nothing reached the suite's server


def test_private_redis_is_empty_each_time_and_settings_come_back():
    with private_redis():
        get_queue("default").add_job("left-behind")
    assert settings.CONVOY["REDIS_URL"] == SUITE_URL
    assert get_queue("default").stats()["queued"] == 0  # convoy is back on the suite's server
    with private_redis():
        assert get_queue("default").stats()["queued"] == 0


def test_private_redis_never_flushes_the_configured_server(redis_client):
    redis_client.set("precious", "1")
    with private_redis():
        pass
    assert redis_client.get("precious") == "1"


def test_flush_refuses_a_server_this_code_did_not_start(redis_client):
    redis_client.set("precious", "1")
    port = int(SUITE_URL.rsplit(":", 1)[1].split("/")[0])

    with pytest.raises(RuntimeError, match="it is not a server this code runs"):
        flush(RedisServer(port=port))
    assert redis_client.get("precious") == "1"


def test_flush_refuses_a_port_now_answered_by_another_server(redis_client):
    redis_client.set("precious", "1")
    port = int(SUITE_URL.rsplit(":", 1)[1].split("/")[0])
    with redis_server() as ours:
        impostor = RedisServer(port=port)
        impostor.process = ours.process  # a running process of ours, not the one on this port

        with pytest.raises(
            RuntimeError, match=f"answers as pid \\d+, not as .* {ours.process.pid}"
        ):
            flush(impostor)
    assert redis_client.get("precious") == "1"


def test_redis_server_stops_its_server_after_the_block():
    with redis_server() as server:
        process = server.process
        assert process.poll() is None
    assert process.poll() is not None


def test_mixin_empties_the_server_before_each_test_and_restores_settings_after_the_class():
    class TwoTests(ConvoyTestMixin, SimpleTestCase):
        def test_1_adds(self):
            assert settings.CONVOY["REDIS_URL"] == self.convoy_server.url != SUITE_URL
            assert get_queue("default").stats()["queued"] == 0
            get_queue("default").add_job("left-behind")

        def test_2_finds_the_server_empty(self):
            assert get_queue("default").stats()["queued"] == 0

    outcome = unittest.TestResult()
    unittest.TestSuite([TwoTests("test_1_adds"), TwoTests("test_2_finds_the_server_empty")]).run(
        outcome
    )

    assert (outcome.testsRun, outcome.errors, outcome.failures) == (2, [], [])
    assert settings.CONVOY["REDIS_URL"] == SUITE_URL


def test_mixin_keeps_a_class_level_override_of_convoy_but_where_redis_is():
    @override_settings(CONVOY={**settings.CONVOY, "KEY_PREFIX": "classlevel"})
    class Overridden(ConvoyTestMixin, SimpleTestCase):
        def test_sees_both(self):
            assert settings.CONVOY["KEY_PREFIX"] == "classlevel"
            assert settings.CONVOY["REDIS_URL"] == self.convoy_server.url

    outcome = unittest.TestResult()
    unittest.TestSuite([Overridden("test_sees_both")]).run(outcome)

    assert (outcome.testsRun, outcome.errors, outcome.failures) == (1, [], [])


class ConvoyTestMixinTests(ConvoyTestMixin, TestCase):
    """The mixin on a TestCase, run as the project's test runner runs it."""

    def test_convoy_uses_the_private_server(self):
        self.assertEqual(settings.CONVOY["REDIS_URL"], self.convoy_server.url)
        self.assertNotEqual(self.convoy_server.url, SUITE_URL)

    def test_jobs_drain_inside_the_test(self):
        from django.contrib.auth.models import User

        User.objects.create(username="driver")
        tasks.record.enqueue("in-a-testcase")

        self.assertEqual(drain("default").processed, ("rec-in-a-testcase",))
        self.assertEqual(User.objects.count(), 1)


# -- the pytest plugin, enabled as the manual says -------------------------------------------


def test_pytest_plugin_gives_each_test_an_empty_server_and_leaves_the_configured_one(
    tmp_path, redis_client
):
    redis_client.set("precious", "1")
    (tmp_path / "conftest.py").write_text(
        'pytest_plugins = ["django_convoy.testing.pytest_plugin"]\n'
    )
    (tmp_path / "test_users_code.py").write_text(
        textwrap.dedent(
            """
            import os

            from django.conf import settings

            from django_convoy import get_queue
            from django_convoy.testing import drain
            from tests.jobs import tasks

            def test_adds_and_drains(convoy_redis):
                assert settings.CONVOY["REDIS_URL"] == convoy_redis.url
                assert convoy_redis.url != os.environ["CONVOY_TEST_REDIS_URL"]
                tasks.record.enqueue("a")
                tasks.record.enqueue("a")
                assert drain("default").processed == ("rec-a",)
                get_queue("default").add_job("left-behind")

            def test_starts_empty(convoy_redis):
                assert get_queue("default").stats()["queued"] == 0
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert redis_client.get("precious") == "1"
