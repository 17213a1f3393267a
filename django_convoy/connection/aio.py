"""The asyncio client: redis-py's ``redis.asyncio``, for coroutines that talk to Redis without
a thread (``ConvoyBackend.aenqueue``, ``aget_result``).

One client per event loop (an asyncio connection belongs to the loop that opened it), made
from the same ``REDIS_URL`` and options as the synchronous client. Only a single server given
by ``REDIS_URL`` is served this way; a Cluster, a Sentinel group, a django-redis
``CONNECTION`` or ``WAIT_REPLICAS`` get ``None``, and their callers run the synchronous path
on a thread instead.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis.asyncio

from ..conf import get_config
from .client import CLIENT_DEFAULTS, NO_RETRIES, _defaults

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
    weakref.WeakKeyDictionary()
)


def get_async_client() -> redis.asyncio.Redis | None:
    """The running loop's client for the configured server, or None (see the module)."""
    config = get_config()
    if config.topology is not None or not config.redis_url or config.wait_replicas:
        return None
    loop = asyncio.get_running_loop()
    made = _clients.get(loop)
    if made is not None and made[0] is config:
        return made[1]
    options = {**config.redis_options, "decode_responses": True, "retry": NO_RETRIES}
    defaults = _defaults(unix_socket=config.redis_url.startswith("unix:"))
    client = redis.asyncio.Redis.from_url(config.redis_url, **{**defaults, **options})
    _clients[loop] = (config, client)
    return client


__all__ = ["CLIENT_DEFAULTS", "get_async_client"]
