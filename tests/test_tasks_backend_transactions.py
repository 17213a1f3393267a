"""Enqueue on commit, for Django tasks (ENQUEUE_ON_COMMIT) and @convoy_task (enqueue_on_commit),
on SQLite and on PostgreSQL: nothing reaches Redis before the commit, or ever after a rollback."""

import time

import pytest
from django.db import connections, transaction
from django.test import override_settings

from tests.djtasks.config import FRAMEWORK

pytest.importorskip(FRAMEWORK, reason="no Tasks framework: pip install -e '.[tasks]'")

from django_convoy import get_queue  # noqa: E402
from django_convoy.backends.framework import TaskResultDoesNotExist  # noqa: E402
from tests.djtasks import tasks  # noqa: E402
from tests.djtasks.config import TASKS  # noqa: E402
from tests.jobs import tasks as convoy_tasks  # noqa: E402


class Rollback(Exception):
    pass


@pytest.fixture(params=["default", "postgres"])
def database(request, django_db_blocker):
    """A database alias to run transactions on: SQLite's, or the machine's PostgreSQL.

    Neither needs tables: the tests only open, commit and roll back transactions.
    """
    alias = request.param
    with django_db_blocker.unblock():
        try:
            connections[alias].ensure_connection()
        except Exception as exc:  # not reachable, or psycopg is not installed
            if alias == "default":
                raise
            settings = connections[alias].settings_dict
            pytest.skip(
                f"PostgreSQL at {settings['HOST']}:{settings['PORT']} (database "
                f"{settings['NAME']!r}) is not reachable: {exc}"
            )
        yield alias
        connections[alias].close()


@pytest.fixture
def on_commit(database):
    """The default backend, told to enqueue when ``database``'s transaction commits."""
    options = {"ENQUEUE_ON_COMMIT": True, "DATABASE": database}
    with override_settings(TASKS={**TASKS, "default": {**TASKS["default"], "OPTIONS": options}}):
        yield database


def queued() -> int:
    return get_queue("default").stats()["queued"]


def test_django_task_is_enqueued_when_the_transaction_commits(on_commit):
    with transaction.atomic(using=on_commit):
        result = tasks.calculate_meaning_of_life.enqueue()
        assert (queued(), result.enqueued_at, result.added) == (0, None, None)
    assert (queued(), result.added) == (1, True)
    assert result.enqueued_at is not None
    assert tasks.calculate_meaning_of_life.get_result(result.id) == result


def test_django_task_is_never_enqueued_when_the_transaction_rolls_back(on_commit):
    with pytest.raises(Rollback), transaction.atomic(using=on_commit):
        result = tasks.calculate_meaning_of_life.enqueue()
        raise Rollback
    assert queued() == 0
    with pytest.raises(TaskResultDoesNotExist):
        tasks.calculate_meaning_of_life.get_result(result.id)


def test_django_task_of_a_rolled_back_savepoint_is_never_enqueued(on_commit):
    with transaction.atomic(using=on_commit):
        kept = tasks.noop_task.enqueue("kept")
        with pytest.raises(Rollback), transaction.atomic(using=on_commit):
            tasks.noop_task.enqueue("dropped")
            raise Rollback
    assert queued() == 1
    assert get_queue("default").get_job(kept.id).payload["args"] == ["kept"]


def test_django_task_outside_a_transaction_is_enqueued_at_once(on_commit):
    result = tasks.noop_task.enqueue()
    assert (queued(), result.added) == (1, True)


def test_deduplicated_enqueue_on_commit_turns_into_the_live_run(on_commit):
    first = tasks.wash_truck.enqueue(7)
    with transaction.atomic(using=on_commit):
        again = tasks.wash_truck.enqueue(7)
        assert again.id != first.id
    assert (again.id, again.added) == (first.id, False)


def test_with_the_option_off_a_django_task_is_enqueued_inside_the_transaction(database):
    options = {"ENQUEUE_ON_COMMIT": False, "DATABASE": database}
    with (
        override_settings(TASKS={**TASKS, "default": {**TASKS["default"], "OPTIONS": options}}),
        pytest.raises(Rollback),
        transaction.atomic(using=database),
    ):
        tasks.noop_task.enqueue()
        raise Rollback
    assert queued() == 1


def test_convoy_task_enqueue_on_commit_waits_for_the_commit(database):
    with transaction.atomic(using=database):
        convoy_tasks.record.enqueue_on_commit("k", using=database)
        assert queued() == 0
    assert get_queue("default").get_job("rec-k").state == "queued"


def test_convoy_task_enqueue_on_commit_is_dropped_on_rollback(database):
    with pytest.raises(Rollback), transaction.atomic(using=database):
        convoy_tasks.record.enqueue_on_commit("k", using=database)
        raise Rollback
    assert get_queue("default").get_job("rec-k") is None


def test_by_default_a_run_enqueued_in_a_transaction_waits_for_its_commit_with_a_worker_running(
    database,
):
    """Wagtail's case: a post_save receiver enqueues inside the admin's transaction. A worker
    waiting for work must not start the run before the commit makes its rows visible."""
    from django_convoy.backends.options import OPTION_DEFAULTS
    from tests.helpers import ThreadedWorker, wait_until

    assert OPTION_DEFAULTS["ENQUEUE_ON_COMMIT"] is True
    options = {"DATABASE": database}  # ENQUEUE_ON_COMMIT left to its default
    with (
        override_settings(TASKS={**TASKS, "default": {**TASKS["default"], "OPTIONS": options}}),
        ThreadedWorker("default"),
    ):
        with transaction.atomic(using=database):
            result = tasks.calculate_meaning_of_life.enqueue()
            time.sleep(0.5)  # an idle worker would have started it by now
            assert queued() == 0 and result.enqueued_at is None
        wait_until(lambda: tasks.calculate_meaning_of_life.get_result(result.id).is_finished)
        assert tasks.calculate_meaning_of_life.get_result(result.id).return_value == 42


def test_outside_a_transaction_the_run_is_enqueued_at_once(database):
    result = tasks.calculate_meaning_of_life.enqueue()
    assert (queued(), result.added) == (1, True)
