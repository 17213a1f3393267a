"""Test settings: the demo project's, pointed at a private redis-server this suite starts.

The server is started once per test run (children such as subprocess workers inherit its URL
through CONVOY_TEST_REDIS_URL) and is the only Redis the suite ever flushes.
"""

import atexit
import os

if not os.environ.get("CONVOY_TEST_REDIS_URL"):
    from django_convoy.testing.servers import RedisServer

    _server = RedisServer().start()
    atexit.register(_server.stop)
    os.environ["CONVOY_TEST_REDIS_URL"] = _server.url
os.environ["REDIS_URL"] = os.environ["CONVOY_TEST_REDIS_URL"]

from testproject.settings import *  # noqa: E402,F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.jobs"]  # noqa: F405
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CONVOY_TEST_DB", ":memory:"),
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

from tests.djtasks import config as _djtasks  # noqa: E402  (Django's Tasks framework)

if _djtasks.AVAILABLE:
    INSTALLED_APPS += _djtasks.APPS
    TASKS = _djtasks.TASKS
DATABASES["postgres"] = _djtasks.POSTGRES
CONVOY = {
    "REDIS_URL": os.environ["REDIS_URL"],
    "KEY_PREFIX": "convoytest",
    "QUEUES": {
        "monsterTrucks": {"CONCURRENCY": 10, "JOB_TIMEOUT": 2.0},
        "default": {},
        # Short leases and timeouts so that recovery tests take a second, not ten.
        "fast": {"CONCURRENCY": 4, "LEASE": 1.0, "JOB_TIMEOUT": 0.5, "MAX_ATTEMPTS": 1},
        "retrying": {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 0.05, "LEASE": 2.0},
        "tiny": {"MAX_PAYLOAD_BYTES": 64},
        "crashy": {"LEASE": 1.0, "JOB_TIMEOUT": 30},
    },
}
LOGGING = {"version": 1, "disable_existing_loggers": False}

if os.environ.get("CONVOY_TEST_SPANS"):  # tests/test_tracing.py: this process's spans
    import tests.otel_capture  # noqa: E402,F401
