"""A private redis-server for a test suite: started once, pointed at, emptied between tests.

The pytest fixture (``pytest_plugin.py``) and :class:`ConvoyTestMixin` are two faces of the
functions here. The rule they share: convoy's tests may flush only a server they started, and
they check that the process answering is that server before every flush, so a test run can
never empty the Redis a developer's settings point at.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import redis
from django.conf import settings
from django.test import override_settings

from .servers import RedisServer

# Settings that say where Redis is, or wait for replicas a single private server does not have:
# the private server replaces them all.
ELSEWHERE_KEYS = (
    "REDIS_URL",
    "CONNECTION",
    "CLUSTER_NODES",
    "SENTINELS",
    "SENTINEL_SERVICE",
    "SENTINEL_OPTIONS",
    "WAIT_REPLICAS",
    "WAIT_TIMEOUT_MS",
)
# REDIS_OPTIONS that name another server or its credentials; the others (timeouts, say) stay.
ELSEWHERE_OPTIONS = ("host", "port", "db", "unix_socket_path", "username", "password")

_lock = threading.Lock()
_session: RedisServer | None = None


@contextmanager
def redis_server(**options: Any) -> Iterator[RedisServer]:
    """Start a private redis-server for the block and stop it after.

    ``options`` go to :class:`RedisServer` (``port``, ``unix_socket``, ``directory``, ``args``).
    The server keeps nothing on disk, so stopping it loses everything, as a test wants.
    """
    server = RedisServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


def session_server() -> RedisServer:
    """The process's private server, started on first use and stopped when the process exits.

    One server for a whole test run: starting one takes tens of milliseconds, emptying one
    takes less than one. Each pytest-xdist worker is a process, so each gets its own.
    """
    global _session
    with _lock:
        if _session is None or _session.process is None or _session.process.poll() is not None:
            _session = RedisServer().start()
            atexit.register(_session.stop)
        return _session


def flush(server: RedisServer) -> None:
    """Empty ``server``, having checked that the process answering is the one this code started.

    A port can be reused by another server once ours has died; its pid gives it away.
    """
    process = server.process
    if process is None or process.poll() is not None:
        raise RuntimeError(f"Refusing to flush {server.url}: it is not a server this code runs.")
    with redis.Redis.from_url(server.url, socket_timeout=5) as client:
        pid = int(client.info("server")["process_id"])
        if pid != process.pid:
            raise RuntimeError(
                f"Refusing to flush {server.url}: it answers as pid {pid}, not as the "
                f"redis-server this code started (pid {process.pid})."
            )
        client.flushall()


def convoy_settings(url: str, convoy: dict[str, Any] | None = None) -> dict[str, Any]:
    """``convoy`` (by default the ``CONVOY`` setting) with Redis at ``url`` and nowhere else.

    Queues, ``KEY_PREFIX`` and client options other than where to connect are kept, so that the
    tests run the queues the project configures.
    """
    if convoy is None:
        convoy = getattr(settings, "CONVOY", None) or {}
    changed = {key: value for key, value in convoy.items() if key not in ELSEWHERE_KEYS}
    if isinstance(convoy.get("REDIS_OPTIONS"), dict):
        changed["REDIS_OPTIONS"] = {
            key: value
            for key, value in convoy["REDIS_OPTIONS"].items()
            if key not in ELSEWHERE_OPTIONS and not key.startswith("ssl")
        }
    changed["REDIS_URL"] = url
    return changed


def override_redis(server: RedisServer) -> override_settings:
    """An ``override_settings`` that points ``CONVOY`` at ``server`` (not yet enabled).

    Going through ``override_settings`` sends ``setting_changed``, on which convoy forgets its
    cached settings and client both when the override starts and when it ends.
    """
    return override_settings(CONVOY=convoy_settings(server.url))


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """Point convoy at the process's private server, emptied, for the block."""
    server = session_server()
    with override_redis(server):
        flush(server)
        yield server


class ConvoyTestMixin:
    """Give each test of a ``SimpleTestCase`` or ``TestCase`` an empty private Redis.

    Put it before the test case class: ``class MyTests(ConvoyTestMixin, TestCase)``. The class's
    own ``@override_settings(CONVOY=...)`` is applied first, and only where Redis is changes.
    Redis has no transactions to roll back, so add jobs in ``setUp`` or in the test, not in
    ``setUpTestData``: every test starts from an empty server.
    """

    convoy_server: ClassVar[RedisServer]
    _convoy_override: ClassVar[override_settings]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        try:
            cls.convoy_server = session_server()
            cls._convoy_override = override_redis(cls.convoy_server)
            cls._convoy_override.enable()
        except BaseException:
            super().tearDownClass()  # type: ignore[misc]
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls._convoy_override.disable()
        finally:
            super().tearDownClass()  # type: ignore[misc]

    def setUp(self) -> None:
        flush(self.convoy_server)
        super().setUp()  # type: ignore[misc]
