import pytest
import redis
from django.conf import settings

from django_convoy import connection


@pytest.fixture
def redis_client() -> redis.Redis:
    """A client of the suite's private server (never the machine's own Redis)."""
    client = redis.Redis.from_url(settings.CONVOY["REDIS_URL"], decode_responses=True)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def clean_redis(redis_client: redis.Redis) -> None:
    """Start every test from an empty private server; the suite started it, so it may flush it."""
    redis_client.flushall()
    connection.reset()
    yield
    connection.reset()
