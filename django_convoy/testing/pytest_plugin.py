"""convoy's pytest plugin: the ``convoy_redis`` fixture.

Enable it in the project's top-level ``conftest.py``::

    pytest_plugins = ["django_convoy.testing.pytest_plugin"]

It works with or without pytest-django: it needs Django's settings configured, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .private import private_redis
from .servers import RedisServer


@pytest.fixture
def convoy_redis() -> Iterator[RedisServer]:
    """Point ``CONVOY`` at a private redis-server for the test, emptied before it starts.

    One server per test process, started the first time a test asks for it; only that server
    is ever flushed. Yields the :class:`~django_convoy.testing.RedisServer` (``.url``).
    """
    with private_redis() as server:
        yield server
