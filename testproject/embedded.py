"""An embedded redis-server for the demo project when no REDIS_URL is given."""

from __future__ import annotations

import fcntl
from pathlib import Path

import redis

from django_convoy.testing.servers import RedisServer


def ensure_embedded_redis(directory: Path) -> str:
    """Return the URL of the project's embedded server, starting it if it is not running."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    url = f"unix://{sock}"
    with open(directory / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
        except (redis.ConnectionError, FileNotFoundError):
            RedisServer(unix_socket=sock, directory=directory).start()
    return url
