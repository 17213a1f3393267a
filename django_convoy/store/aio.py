"""The store's asyncio face: the scripts a coroutine runs, sent by ``redis.asyncio`` with the
same sources, keys and decoders as ``QueueStore.call`` (``scripts.SPECS``). No write here
waits for replicas: ``connection.aio`` serves no client when ``WAIT_REPLICAS`` is set."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from ..connection import reporting_unavailable
from .queues import QueueStore
from .scripts import SPECS, source

# Scripts a Redis < 7 could not compile with their flags line: sent without it from then on,
# as scripts.unflag_if_unknown does for the synchronous client.
_plain: set[str] = set()


def _text(name: str) -> str:
    return source(name, flags=name not in _plain)


def _sha(name: str) -> str:
    return hashlib.sha1(_text(name).encode()).hexdigest()  # noqa: S324 - Redis's script id


async def _load(client: Any, name: str) -> None:
    """Load script ``name`` (NOSCRIPT: it did not run), without its flags line if need be."""
    try:
        await client.script_load(_text(name))
    except redis.ResponseError as exc:
        if "Error compiling script" not in str(exc) or name in _plain:
            raise
        _plain.add(name)
        await client.script_load(_text(name))


async def call(
    client: Any, store: QueueStore, name: str, args: Sequence[Any], extra_keys: Sequence[str] = ()
) -> Any:
    """Run script ``name`` over ``store``'s keys; return its record, as ``QueueStore.call``."""
    keys = (*store.keys, *extra_keys)
    with reporting_unavailable(client):  # RedisUnavailable, RedisFull: as the sync client's
        try:
            raw = await client.evalsha(_sha(name), len(keys), *keys, *args)
        except NoScriptError:  # not run: load it and send it again
            await _load(client, name)
            raw = await client.evalsha(_sha(name), len(keys), *keys, *args)
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
            with reporting_unavailable(client):
                replies = await pipe.execute()
        except NoScriptError:
            await _load(client, "task_result")
            continue
        found = (decode(s.name, [result_id], raw) for s, raw in zip(stores, replies, strict=True))
        return next((reply for reply in found if reply), None)
    raise redis.ResponseError("task_result could not be loaded")
