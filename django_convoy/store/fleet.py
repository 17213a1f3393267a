"""``Fleet``: the workers registry in Redis: heartbeats, who is alive, and what each said.

Workers are not a queue's: their keys share the ``{workers}`` hash tag (one slot of their own).
Whether a worker is alive is read from its last beat by one rule, ``worker_alive``, which the
jam guard's report and the dashboard both use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from ..connection import reporting_unavailable
from . import scripts
from .keys import worker_key, workers_registry_key
from .scripts import SPECS, scripts_for

# Kept as long as the registry remembers the worker, so that a dead worker's host, pid and
# counts stay visible (heartbeat.lua forgets workers gone for this long).
WORKER_RECORD_TTL_SECONDS = 3600


def worker_alive(now_ms: int, beat: str | None, every: str | None) -> bool:
    """Whether a worker whose last heartbeat was at ``beat`` (ms, Redis clock) is alive.

    Gone means a beat missed twice over; ``every`` is the interval the worker announced.
    """
    try:
        return now_ms - int(beat) <= 2 * int(every or 0)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class WorkerRecord:
    """A worker as the registry knows it: its last beat, and what that beat said."""

    id: str
    registry_beat_ms: int  # its score in the registry
    beat_ms: str | None  # from its own HASH (gone after an hour)
    every_ms: str | None
    info: dict[str, Any]


class Fleet:
    """The workers registry under ``key_prefix``."""

    def __init__(self, key_prefix: str, client: redis.Redis):
        self.client = client
        self.registry = workers_registry_key(key_prefix)
        self.key_prefix = key_prefix

    def heartbeat(self, worker_id: str, info: dict[str, Any], every_ms: int) -> int:
        """Say ``worker_id`` is alive and what it does; return Redis's now (ms)."""
        spec = SPECS["heartbeat"]
        keys = [self.registry, worker_key(self.key_prefix, worker_id)]
        args = [worker_id, WORKER_RECORD_TTL_SECONDS, json.dumps(info), every_ms]
        script = scripts_for(self.client).by_name["heartbeat"]
        with reporting_unavailable(self.client):
            raw = scripts.unflagging(script, lambda: scripts.run(self.client, script, keys, args))
        return spec.decode("", args, raw)

    def deregister(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        with reporting_unavailable(self.client):
            # Not a MULTI: on a Redis Cluster, a plain pipeline of one slot's keys is safe.
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.registry, worker_id)
            pipe.delete(worker_key(self.key_prefix, worker_id))
            pipe.execute()

    def alive(self, worker_ids: Iterable[str]) -> dict[str, bool]:
        """Which of these workers still send heartbeats."""
        ids = sorted(set(filter(None, worker_ids)))
        if not ids:
            return {}
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            for worker_id in ids:
                pipe.hmget(worker_key(self.key_prefix, worker_id), "beat", "every")
            (seconds, micros), *beats = pipe.execute()
        now_ms = seconds * 1000 + micros // 1000
        return {
            worker_id: worker_alive(now_ms, beat, every)
            for worker_id, (beat, every) in zip(ids, beats, strict=True)
        }

    def queue_registry_read(self, pipe: Any) -> None:
        """Queue the read of the registry on ``pipe`` (``records`` reads the workers next)."""
        pipe.zrange(self.registry, 0, -1, withscores=True)

    def snapshot(self) -> tuple[int, list[WorkerRecord]]:
        """Redis's now (ms) and every registered worker's record (two round trips)."""
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            self.queue_registry_read(pipe)
            (seconds, micros), registry = pipe.execute()
        return seconds * 1000 + micros // 1000, self.records(registry)

    def records(self, registry: list[tuple[str, float]]) -> list[WorkerRecord]:
        """Read the HASH of each worker in ``registry`` (one round trip)."""
        if not registry:
            return []
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=False)
            for worker_id, _ in registry:
                pipe.hmget(worker_key(self.key_prefix, worker_id), "info", "beat", "every")
            beats = pipe.execute()
        return [
            WorkerRecord(worker_id, int(score), beat, every, _info(info_json))
            for (worker_id, score), (info_json, beat, every) in zip(registry, beats, strict=True)
        ]


def _info(info_json: str | None) -> dict[str, Any]:
    try:
        info = json.loads(info_json) if info_json else {}
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}
