"""Notice when Redis cannot keep convoy's promises: lost data, keys it may evict, a full Redis."""

from __future__ import annotations

import logging
import threading

import redis

from .connection.cluster import data_nodes
from .store import DataMarks

logger = logging.getLogger(__name__)

SAFE_EVICTION_POLICIES = (
    "noeviction",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)


class DataMarkWatch:
    """Detect that Redis lost a queue's data by watching its ``DataMarks``.

    A sequence counter that goes back, or a birth time that changes or vanishes, means the
    server restarted without persistence, restored an older snapshot, failed over to a replica
    that missed writes, or was flushed: jobs queued or running before that may be gone, and no
    later write can tell. Say so loudly.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int | None, DataMarks]] = {}
        self._lock = threading.Lock()

    def observe(self, queue: str, marks: DataMarks, at_ms: int | None = None) -> bool:
        """Record ``queue``'s marks; log CRITICAL and return True if they show a loss.

        ``at_ms`` is when Redis read them (its clock), for marks that two threads read: their
        replies arrive in either order, and an older reading after a newer one (an earlier
        millisecond, or the same one with a lower counter) is not a counter going back. A
        real loss shows in the next reading all the same: the newer marks are kept.
        """
        with self._lock:
            last_at, last = self._seen.get(queue, (None, None))
            if at_ms is not None and last_at is not None and last is not None:
                if at_ms < last_at or (at_ms == last_at and marks.sequence < last.sequence):
                    return False
            self._seen[queue] = (at_ms, marks)
        if last is None or (
            marks.sequence >= last.sequence and marks.born in (last.born, "") or not last.born
        ):
            return False
        logger.critical(
            "Redis lost convoy's data for queue %s: its sequence counter went from %d to %d and "
            "its birth mark from %r to %r (a restart without persistence, an older snapshot, a "
            "failover to a stale replica, or a FLUSH). Jobs queued or running before that may "
            "be lost.",
            queue,
            last.sequence,
            marks.sequence,
            last.born,
            marks.born,
        )
        return True


def eviction_policy(client: redis.Redis) -> str | None:
    """Return Redis's maxmemory-policy (a cluster's or Sentinel group's first unsafe one, if
    any server has one), or None when the server will not say."""
    try:
        with data_nodes(client) as nodes:
            policies = [node.info("memory").get("maxmemory_policy") for _, _, node in nodes]
    except redis.RedisError:
        return None
    unsafe = [policy for policy in policies if policy not in SAFE_EVICTION_POLICIES]
    return (unsafe or policies or [None])[0]


NEARLY_FULL = 0.9  # of maxmemory


def memory_warnings(client: redis.Redis) -> list[tuple[str, str]]:
    """(check id, message) for each server that is nearly full (``convoy.W005``), or that has a
    ``maxmemory`` but is older than Redis 7 (``convoy.W006``); none when it will not say."""
    found: list[tuple[str, str]] = []
    try:
        with data_nodes(client) as nodes:
            for name, _, node in nodes:
                memory, version = node.info("memory"), node.info("server").get("redis_version")
                found += _memory_warnings(name, memory, str(version or ""))
    except redis.RedisError:
        return []
    return found


def _memory_warnings(name: str, memory: dict, version: str) -> list[tuple[str, str]]:
    limit, used = int(memory.get("maxmemory") or 0), int(memory.get("used_memory") or 0)
    if not limit:
        return []
    found = []
    if used >= NEARLY_FULL * limit:
        found.append(
            (
                "convoy.W005",
                f"Redis at {name} uses {100 * used // limit}% of its maxmemory ({limit} bytes): "
                "once it is full, adds raise RedisFull and workers claim no job until it has "
                "room (renewals, acks and the jam guard go on).",
            )
        )
    if version and int(version.split(".")[0]) < 7:
        found.append(
            (
                "convoy.W006",
                f"Redis at {name} is {version}, older than 7, and has a maxmemory: when it is "
                "full it refuses lease renewals too (it knows no script flags), so running jobs "
                "are jammed and may run twice. Use Redis 7 or keep it well below maxmemory.",
            )
        )
    return found


def eviction_warning(client: redis.Redis) -> str | None:
    """Explain why Redis's eviction policy can lose jobs, or return None if it cannot."""
    policy = eviction_policy(client)
    if policy is None or policy in SAFE_EVICTION_POLICIES:
        return None
    return (
        f"Redis's maxmemory-policy is {policy!r}: when memory runs out Redis may evict convoy's "
        "keys and lose jobs. Set maxmemory-policy to 'noeviction' (or a volatile-* policy): "
        "then a full Redis refuses new jobs (adds raise RedisFull) and loses none."
    )
