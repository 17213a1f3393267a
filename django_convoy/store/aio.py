"""The store's asyncio face: the scripts a coroutine runs, sent by ``redis.asyncio`` with the
same sources, keys and decoders as ``QueueStore.call`` (``scripts.SPECS``). No write here
waits for replicas: ``connection.aio`` serves no client when ``WAIT_REPLICAS`` is set."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from ..connection import cluster
from ..connection.client import _without_credentials
from ..exceptions import RedisUnavailable
from .queues import QueueStore
from .scripts import SPECS, source


def _sha(name: str) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()  # noqa: S324 - Redis's script id


def _unavailable(client: Any, exc: BaseException) -> RedisUnavailable:
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"
    return RedisUnavailable(
        f"Redis at {where} is unreachable ({type(exc).__name__}: {_without_credentials(str(exc))})."
    )


async def call(
    client: Any, store: QueueStore, name: str, args: Sequence[Any], extra_keys: Sequence[str] = ()
) -> Any:
    """Run script ``name`` over ``store``'s keys; return its record, as ``QueueStore.call``."""
    keys = (*store.keys, *extra_keys)
    try:
        try:
            raw = await client.evalsha(_sha(name), len(keys), *keys, *args)
        except NoScriptError:  # not run: load it and send it again
            await client.script_load(source(name))
            raw = await client.evalsha(_sha(name), len(keys), *keys, *args)
    except cluster.UNAVAILABLE_ERRORS as exc:
        raise _unavailable(client, exc) from exc
    return SPECS[name].decode(store.name, list(args), raw)


async def find_result(
    client: Any, stores: Sequence[QueueStore], result_id: str
) -> list[Any] | None:
    """``overview.find_result`` for a coroutine: one round trip over every store."""
    if not stores:
        return None
    sha, decode = _sha("task_result"), SPECS["task_result"].decode
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        for store in stores:
            keys = (*store.keys, store.result_key(result_id))
            pipe.evalsha(sha, len(keys), *keys, result_id)
        try:
            replies = await pipe.execute()
        except NoScriptError:
            await client.script_load(source("task_result"))
            continue
        except cluster.UNAVAILABLE_ERRORS as exc:
            raise _unavailable(client, exc) from exc
        found = (decode(s.name, [result_id], raw) for s, raw in zip(stores, replies, strict=True))
        return next((reply for reply in found if reply), None)
    raise redis.ResponseError("task_result could not be loaded")
