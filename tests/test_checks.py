"""Misconfiguration is reported by `manage.py check`, naming the queue and the key."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_convoy import get_queue
from django_convoy.checks import check_settings

URL = "redis://127.0.0.1:1/0"


def messages(convoy) -> list[tuple[str, str]]:
    with override_settings(CONVOY=convoy):
        return [(error.id, error.msg) for error in check_settings()]


def test_valid_settings_pass():
    assert (
        messages(
            {
                "REDIS_URL": URL,
                "QUEUES": {
                    "default": {},
                    "fast": {},
                    "retrying": {},
                    "tiny": {},
                    "crashy": {},
                    "monsterTrucks": {"CONCURRENCY": 10, "JOB_TIMEOUT": 2.0},
                },
            }
        )
        == []
    )


@pytest.mark.parametrize(
    "convoy, expected",
    [
        (None, ("convoy.E001", "The CONVOY setting is missing.")),
        ("redis://", ("convoy.E001", "CONVOY must be a dict, not str.")),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {}}, "QUEUE": {}},
            ("convoy.E002", "CONVOY has an unknown key 'QUEUE'."),
        ),
        (
            {"QUEUES": {"default": {}}},
            ("convoy.E003", "CONVOY has no connection: set REDIS_URL or CONNECTION."),
        ),
        (
            {"REDIS_URL": "http://x", "QUEUES": {"default": {}}},
            ("convoy.E003", "CONVOY['REDIS_URL'] is not a Redis URL."),
        ),
        (
            {"CONNECTION": "sessions", "QUEUES": {"default": {}}},
            (
                "convoy.E003",
                "CONVOY['CONNECTION'] names the cache 'sessions', which is not in CACHES "
                "(configured: default).",
            ),
        ),
        (
            {"REDIS_URL": URL, "KEY_PREFIX": "a{b}", "QUEUES": {"default": {}}},
            ("convoy.E004", "CONVOY['KEY_PREFIX'] 'a{b}' is not a valid key prefix."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {}},
            ("convoy.E006", "CONVOY['QUEUES'] must be a non-empty dict of queue name -> settings."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {}, "bad}name": {}}},
            ("convoy.E007", "Queue name 'bad}name' is not valid."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {}, "trailing\n": {}}},
            ("convoy.E007", "Queue name 'trailing\\n' is not valid."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": []}},
            ("convoy.E008", "The settings of queue 'default' must be a dict, not list."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"CONCURRENCE": 2}}},
            ("convoy.E009", "Queue 'default' has an unknown key 'CONCURRENCE'."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"CONCURRENCY": "10"}}},
            ("convoy.E010", "Queue 'default': CONCURRENCY must be an integer, not '10'."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"JOB_TIMEOUT": True}}},
            ("convoy.E010", "Queue 'default': JOB_TIMEOUT must be a number, not True."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"JOB_TIMEOUT": -1}}},
            ("convoy.E011", "Queue 'default': JOB_TIMEOUT must be >= 0, not -1."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"LEASE": 0}}},
            ("convoy.E011", "Queue 'default': LEASE must be > 0, not 0."),
        ),
        (
            {"REDIS_URL": URL, "QUEUES": {"default": {"CONCURRENCY": 0}}},
            ("convoy.E011", "Queue 'default': CONCURRENCY must be >= 1, not 0."),
        ),
    ],
)
def test_each_problem_is_reported_with_its_id_and_message(convoy, expected):
    assert expected in messages(convoy)


def test_task_bound_to_a_missing_queue_is_reported():
    found = messages({"REDIS_URL": URL, "QUEUES": {"default": {}}})
    assert (
        "convoy.E012",
        "Task tests.jobs.tasks.slow is bound to queue 'fast', which is not in "
        "CONVOY['QUEUES'] (configured: default).",
    ) in found


def test_manage_py_check_fails_on_a_bad_setting():
    with override_settings(CONVOY={"REDIS_URL": URL, "QUEUES": {"default": {"LEASE": -1}}}):
        with pytest.raises(SystemCheckError, match="convoy.E011"):
            call_command("check")


def test_using_a_bad_setting_raises_improperly_configured_with_the_same_message():
    with override_settings(CONVOY={"REDIS_URL": URL, "QUEUES": {"default": {"LEASE": -1}}}):
        with pytest.raises(ImproperlyConfigured, match="LEASE must be > 0, not -1"):
            get_queue("default")


def test_connection_alias_reuses_a_django_redis_cache(settings, redis_client):
    url = settings.CONVOY["REDIS_URL"]
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}}
    with override_settings(
        CACHES=caches,
        CONVOY={"CONNECTION": "default", "KEY_PREFIX": "convoytest", "QUEUES": {"default": {}}},
    ):
        assert get_queue("default").add_job("via-cache").added
    assert redis_client.zcard("convoytest:{default}:queued") == 1


def _socket_options() -> dict:
    from django_convoy import connection

    kwargs = connection.get_client().connection_pool.connection_kwargs
    return {key: kwargs.get(key) for key in ("socket_timeout", "socket_keepalive")}


def test_client_never_waits_forever_on_a_reply_unless_told_to(settings):
    """A reply timeout by default; the URL, REDIS_OPTIONS and a django-redis cache override it."""
    url = settings.CONVOY["REDIS_URL"]
    assert _socket_options() == {"socket_timeout": 30, "socket_keepalive": True}
    with override_settings(CONVOY={**settings.CONVOY, "REDIS_URL": f"{url}?socket_timeout=2"}):
        assert _socket_options()["socket_timeout"] == 2
    with override_settings(CONVOY={**settings.CONVOY, "REDIS_OPTIONS": {"socket_timeout": None}}):
        assert _socket_options()["socket_timeout"] is None
    caches = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            # A database of its own: django-redis keeps one pool per URL for the process.
            "LOCATION": url.rsplit("/", 1)[0] + "/3",
            "OPTIONS": {"SOCKET_TIMEOUT": 3},
        }
    }
    with override_settings(
        CACHES=caches, CONVOY={"CONNECTION": "default", "QUEUES": {"default": {}}}
    ):
        assert _socket_options() == {"socket_timeout": 3, "socket_keepalive": True}
