"""Settings for the benchmarks: the demo project's, plus no-op tasks and quiet logging.

``REDIS_URL`` must name the private redis-server a benchmark started (``benchmarks.common``
sets it); without it these settings refuse to load rather than fall back to the demo's
embedded server or to a Redis somebody else uses.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("REDIS_URL"):
    raise ImproperlyConfigured(
        "benchmarks.settings needs REDIS_URL: run the benchmarks with `make bench` or "
        "`python -m benchmarks.<script>`, which start a private redis-server."
    )

from testproject.settings import *  # noqa: E402,F403

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks"]  # noqa: F405
DEBUG = False
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CONVOY = {
    "REDIS_URL": os.environ["REDIS_URL"],
    "KEY_PREFIX": "bench",
    # The demo's queues stay (its tasks are installed); the benchmark queues use the defaults
    # throughout (CONCURRENCY 1, LEASE 10 s, JOB_TIMEOUT 5 s): what a user gets.
    # flow-*: flow control (benchmarks/flow_control.py).
    "QUEUES": {
        **CONVOY["QUEUES"],  # noqa: F405
        "bench": {},
        "latency": {},
        "unique": {},
        "flow-rate": {"RATE_LIMIT": "500/s"},
        "flow-groups": {"GROUP_CONCURRENCY": 1},
    },
}
# No handler for django_convoy: convoy_worker's --verbosity decides (0: WARNING and up only).
LOGGING = {"version": 1, "disable_existing_loggers": False}
