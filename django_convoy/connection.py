"""The Redis client convoy uses: from ``REDIS_URL``, or a django-redis cache's settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from . import cluster
from .conf import get_config
from .exceptions import RedisUnavailable

_lock = threading.Lock()
_client: redis.Redis | None = None


def get_client() -> redis.Redis:
    """Return the shared, thread-safe client (replies decoded to ``str``)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = _make_client()
    return _client


def reset() -> None:
    """Drop the shared client, e.g. after the settings changed or in a forked child."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


def _make_client() -> redis.Redis:
    config = get_config()
    options = {"health_check_interval": 30, **config.redis_options, "decode_responses": True}
    if config.topology is not None:  # a Redis Cluster or a Sentinel group
        try:
            return cluster.make_client(config.topology, options)
        except redis.ConnectionError as exc:
            raise RedisUnavailable(
                f"{config.topology.describe()} is unreachable ({_without_credentials(str(exc))})."
            ) from exc
    if config.redis_url:
        return redis.Redis.from_url(config.redis_url, **options)
    # CONNECTION: reuse the connection settings of a django-redis cache. Convoy keeps a pool
    # of its own because it needs decoded replies, which the cache's client does not give.
    from django_redis import get_redis_connection

    source = get_redis_connection(config.connection).connection_pool
    if (sentinel_client := cluster.client_from_pool(source, options)) is not None:
        return sentinel_client
    kwargs = {**source.connection_kwargs, **options}
    pool = type(source)(connection_class=source.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def endpoint(client: redis.Redis) -> str:
    """Describe where ``client`` connects, without credentials."""
    if described := cluster.describe(client):
        return described
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix socket {kwargs['path']}"
    return f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"


@contextmanager
def reporting_unavailable(client: redis.Redis) -> Iterator[None]:
    """Turn redis-py's connection errors into ``RedisUnavailable`` naming host and port."""
    try:
        yield
    except cluster.UNAVAILABLE_ERRORS as exc:  # incl. CLUSTERDOWN, TRYAGAIN: retry later
        raise RedisUnavailable(
            f"Redis at {endpoint(client)} is unreachable ({type(exc).__name__}: "
            f"{_without_credentials(str(exc))})."
        ) from exc


def _without_credentials(message: str) -> str:
    import re

    return re.sub(r"//[^@/\s]*@", "//***@", message)
