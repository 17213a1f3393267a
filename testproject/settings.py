"""Settings of the demo project; the tests build on them (tests/settings.py)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
# What the demo keeps: its database, and its redis-server's socket and log (DEMO_VAR: elsewhere).
VAR = Path(os.environ.get("DEMO_VAR") or BASE_DIR / "var")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "testproject-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_convoy",
    "testproject.trucks",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "testproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TESTPROJECT_DB", str(VAR / "db.sqlite3")),
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


def demo_redis_socket() -> Path:
    """Where ``make demo`` runs its redis-server when no REDIS_URL is given."""
    return VAR / "redis.sock"


# REDIS_URL from the environment, else the redis-server of a running `make demo`: so a
# `manage.py shell` in another terminal queues jobs for the demo's worker. Nothing here starts a
# server (one started by a shell would outlive it); without the demo, Redis is unreachable.
REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{demo_redis_socket()}"

CONVOY = {
    "REDIS_URL": REDIS_URL,
    "KEY_PREFIX": os.environ.get("CONVOY_KEY_PREFIX", "convoy"),
    "QUEUES": {
        "monsterTrucks": {"CONCURRENCY": 10, "JOB_TIMEOUT": 2.0},
        "default": {},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_convoy": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
