"""Where convoy's data lives and how to reach it: the one client (a server, a Redis Cluster or a
Sentinel group), and connection errors told as ``RedisUnavailable``."""

from .client import (
    CLIENT_DEFAULTS,
    NO_RETRIES,
    endpoint,
    get_client,
    reporting_unavailable,
    reset,
)

__all__ = [
    "CLIENT_DEFAULTS",
    "NO_RETRIES",
    "endpoint",
    "get_client",
    "reporting_unavailable",
    "reset",
]
