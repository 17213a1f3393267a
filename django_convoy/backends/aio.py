"""``aenqueue`` and ``aget_result`` of ``ConvoyBackend`` on the caller's event loop, with
redis-py's asyncio client (``connection/aio.py``, ``store/aio.py``), rather than the
synchronous calls on a thread that Django's default async methods make.

The same scripts run with the same arguments as ``enqueue`` and ``get_result``, so the outcome
is the same. Where no asyncio client is served (a Cluster, Sentinel, a django-redis
``CONNECTION``, ``WAIT_REPLICAS``), and for an enqueue that waits for a commit (the
``on_commit`` callback runs synchronously anyway), the synchronous path runs on a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async

from ..connection.aio import get_async_client
from ..exceptions import InvalidJob
from ..store import aio as store_aio
from .framework import Task, TaskResultDoesNotExist, task_enqueued
from .results import Added, ConvoyTaskResult, ready_result, stored_result


async def enqueue(
    backend: Any, task: Task, args: Iterable[Any], kwargs: dict[str, Any]
) -> ConvoyTaskResult:
    """``backend.enqueue(task, args, kwargs)`` (a ``ConvoyBackend``), awaiting Redis on this
    loop."""
    client = get_async_client()
    if client is None or backend.waits_for_commit():
        return await sync_to_async(backend.enqueue)(task, args, kwargs)
    queue, run, job_id, body = backend._prepare(task, args, kwargs)
    extra = [queue.store.result_key(run.result_id)]
    add_args = backend.add_args(task, queue, job_id, body)
    added = Added(*await store_aio.call(client, queue.store, "task_add", add_args, extra))
    if added.outcome == "exists":
        if not added.result_id:
            raise InvalidJob(
                f"Job id {job_id!r} of queue {queue.name!r} is held by a job that was not "
                "enqueued through Django's Tasks framework; nothing was enqueued."
            )
        reply = await store_aio.find_result(client, [queue.store], added.result_id)
        if reply is None:
            raise TaskResultDoesNotExist(added.result_id)
        return stored_result(reply, added.result_id, added=False)
    result = ready_result(task, run, added.now_ms, added=True)
    await task_enqueued.asend_robust(type(backend), task_result=result)
    return result


async def get_result(backend: Any, result_id: str) -> ConvoyTaskResult:
    """``backend.get_result(result_id)``, awaiting Redis on this loop."""
    client = get_async_client()
    if client is None:
        return await sync_to_async(backend.get_result)(result_id)
    if not isinstance(result_id, str) or not result_id:
        raise TaskResultDoesNotExist(result_id)
    stores = [queue.store for queue in backend._result_queues()]
    reply = await store_aio.find_result(client, stores, result_id)
    if reply is None:
        raise TaskResultDoesNotExist(result_id)
    return stored_result(reply, result_id)
