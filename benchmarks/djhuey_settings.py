"""The demo project's settings as a Huey user would have them: Huey's Django integration
(``huey.contrib.djhuey``, its worker ``manage.py run_huey``) in place of convoy, for W0's
start-to-first-job beside ``convoy_worker`` (``benchmarks/start_cost.py``).

The same Django apps, middleware and database, without convoy's app or its demo app (whose
imports would slow Huey's start, not convoy's), and the Huey of ``benchmarks.huey_app``, whose
tasks every W-io workload queues.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("REDIS_URL"):
    raise ImproperlyConfigured(
        "benchmarks.djhuey_settings needs REDIS_URL: see benchmarks.settings."
    )

from benchmarks.huey_app import huey as HUEY  # noqa: E402,F401
from testproject.settings import *  # noqa: E402,F403

INSTALLED_APPS = [
    *(app for app in INSTALLED_APPS if app not in ("django_convoy", "testproject.trucks")),  # noqa: F405
    "huey.contrib.djhuey",
]
ROOT_URLCONF = "benchmarks.djhuey_urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEBUG = False
