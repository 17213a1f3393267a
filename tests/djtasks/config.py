"""What the Django Tasks tests add to tests/settings.py.

Django 6 ships the framework as django.tasks; on Django 5.2 it is the django-tasks backport
(``make test-dj52`` installs the ``tasks`` extra). Without either, the test app is left out and
its tests skip.
"""

import importlib.util

import django

FRAMEWORK = "django.tasks" if django.VERSION >= (6,) else "django_tasks"
AVAILABLE = importlib.util.find_spec(FRAMEWORK) is not None

APPS = (["django_tasks"] if FRAMEWORK == "django_tasks" else []) + ["tests.djtasks"]
QUEUES = ["default", "monsterTrucks", "retrying", "fast", "crashy"]
TASKS = {
    "default": {"BACKEND": "django_convoy.backends.ConvoyBackend", "QUEUES": QUEUES},
    "immediate": {
        "BACKEND": f"{FRAMEWORK}.backends.immediate.ImmediateBackend",
        "QUEUES": QUEUES,
    },
}
# The machine's PostgreSQL (trust auth), for the transaction tests; they skip without it. No
# test database is created: those tests only open, commit and roll back transactions.
POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "test",
    "USER": "postgres",
    "HOST": "127.0.0.1",
    "PORT": "5432",
    "OPTIONS": {"connect_timeout": 2},
}
