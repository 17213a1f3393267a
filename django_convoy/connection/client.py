"""The Redis client convoy uses: from ``REDIS_URL``, or a django-redis cache's settings."""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..conf import get_config
from ..exceptions import RedisFull, RedisUnavailable
from . import cluster

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


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONVOY", "CACHES"):
        reset()


# Below anything the URL, REDIS_OPTIONS or a django-redis cache says. redis-py waits forever on
# a reply by default: a connection whose far end vanished without a FIN (a failover, a NAT that
# forgot the flow) would hang a producer or a worker's thread for good.
CLIENT_DEFAULTS: dict[str, Any] = {
    "health_check_interval": 30,
    "socket_timeout": 30,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
}


# Over anything the settings say: redis-py can send a command again after a connection error
# (how often depends on how the client was built). A claim sent twice claims twice, and the first
# claim's runs stay held for a worker that never learned of them until the jam guard takes them
# a lease later, counting a jam; a BLPOP sent twice loses the handed run it popped. Convoy
# recovers from a lost reply itself (a worker runs release_orphans before its next claim), so it
# must hear of it. Redis Cluster and Sentinel clients keep redis-py's handling of failovers.
NO_RETRIES = Retry(NoBackoff(), 0)


def _make_client() -> redis.Redis:
    config = get_config()
    options = {**config.redis_options, "decode_responses": True}
    if config.topology is not None:  # a Redis Cluster or a Sentinel group
        try:
            return cluster.make_client(config.topology, options, CLIENT_DEFAULTS)
        except redis.ConnectionError as exc:
            raise RedisUnavailable(
                f"{config.topology.describe()} is unreachable ({_reason(exc)})."
            ) from exc
    options["retry"] = NO_RETRIES
    if config.redis_url:  # the URL's own query options win over these (redis-py's rule)
        defaults = _defaults(unix_socket=config.redis_url.startswith("unix:"))
        return redis.Redis.from_url(config.redis_url, **{**defaults, **options})
    # CONNECTION: reuse the connection settings of a django-redis cache. Convoy keeps a pool
    # of its own because it needs decoded replies, which the cache's client does not give.
    from django_redis import get_redis_connection

    source = get_redis_connection(config.connection).connection_pool
    if (sentinel_client := cluster.client_from_pool(source, options, CLIENT_DEFAULTS)) is not None:
        return sentinel_client
    unix_socket = issubclass(source.connection_class, redis.UnixDomainSocketConnection)
    kwargs = {**_defaults(unix_socket), **source.connection_kwargs, **options}
    pool = type(source)(connection_class=source.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def _defaults(unix_socket: bool) -> dict[str, Any]:
    if unix_socket:  # no TCP: keepalive is not an option of a unix socket's connection
        return {k: v for k, v in CLIENT_DEFAULTS.items() if k != "socket_keepalive"}
    return CLIENT_DEFAULTS


def endpoint(client: redis.Redis) -> str:
    """Describe where ``client`` connects, without credentials."""
    if described := cluster.describe(client):
        return described
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix socket {kwargs['path']}"
    return f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"


class reporting_unavailable:  # noqa: N801 - used as a function: with reporting_unavailable(c)
    """Turn redis-py's connection errors into ``RedisUnavailable`` naming host and port, and
    Redis's refusal to grow past ``maxmemory`` into ``RedisFull``.

    A class rather than a ``@contextmanager`` generator: every script call enters one, and a
    generator costs a visible share of an add's client time."""

    __slots__ = ("client",)

    def __init__(self, client: redis.Redis):
        self.client = client

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        if kind is None:
            return
        if issubclass(kind, cluster.UNAVAILABLE_ERRORS):
            # incl. CLUSTERDOWN, TRYAGAIN: retry later
            raise RedisUnavailable(
                f"Redis at {endpoint(self.client)} is unreachable ({kind.__name__}: "
                f"{_reason(exc)})."
            ) from exc
        if issubclass(kind, redis.ResponseError) and is_out_of_memory(exc):
            raise RedisFull(
                f"Redis at {endpoint(self.client)} is full: it refused a write past its "
                "maxmemory (noeviction). Nothing was written; try again once it has room."
            ) from exc


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Whether Redis refused a command for want of memory: ``OutOfMemoryError``, or the same
    refusal of a command inside a script, which Redis 6.2 reports as a script error."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return True
    return "OOM command not allowed" in str(exc)


def _reason(exc: BaseException | None) -> str:
    """redis-py's message, credentials taken out, without its full stop: it goes on inside
    convoy's own sentence."""
    return _without_credentials(str(exc)).rstrip(".")


def _without_credentials(message: str) -> str:
    import re

    return re.sub(r"//[^@/\s]*@", "//***@", message)
