"""Reads over many queues at once, each one round trip: the dashboard's overview, which queues
are paused, and where a Django task's result is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..connection import reporting_unavailable
from .queues import QueueStore


@dataclass(frozen=True)
class Overview:
    """Every queue's counts, last hour and runs held now, and the workers registry, read in one
    round trip at Redis's ``now_ms``."""

    now_ms: int
    counts: list[dict[str, Any]]  # per queue, as QueueStore.counts()
    throughput: list[dict[str, str]]  # per queue: "processed:<minute>" / "failed:<minute>"
    held: list[Any]  # per queue, as the running script's decoder gives them
    registry: list[tuple[str, float]]  # worker id, last beat (ms)


def read_overview(stores: Sequence[QueueStore], held_listed: int) -> Overview:
    """Read ``stores`` and the workers registry (listing ``held_listed`` runs per worker)."""
    client = stores[0].client
    with reporting_unavailable(client):
        pipe = client.pipeline(transaction=False)
        pipe.time()
        counts = [store.pipelined(pipe, "stats", []) for store in stores]
        for store in stores:
            pipe.hgetall(store.keys.throughput)
        held = [store.pipelined(pipe, "running", [held_listed]) for store in stores]
        stores[0].fleet.queue_registry_read(pipe)
        (seconds, micros), *replies, registry = pipe.execute()
    n = len(stores)
    return Overview(
        seconds * 1000 + micros // 1000,
        [decode(raw) for decode, raw in zip(counts, replies[:n], strict=True)],
        replies[n : 2 * n],
        [decode(raw) for decode, raw in zip(held, replies[2 * n :], strict=True)],
        registry,
    )


def paused(stores: Sequence[QueueStore]) -> list[str]:
    """The names of the paused queues among ``stores``."""
    client = stores[0].client
    with reporting_unavailable(client):
        pipe = client.pipeline(transaction=False)
        for store in stores:
            pipe.exists(store.keys.paused)
        flags = pipe.execute()
    return [store.name for store, flag in zip(stores, flags, strict=True) if flag]


def find_result(stores: Sequence[QueueStore], result_id: str) -> list[Any] | None:
    """The reply of ``task_result`` from whichever of ``stores`` has the result, or None."""
    if not stores:
        return None
    client = stores[0].client
    pipe = client.pipeline(transaction=False)
    decoders = [
        store.pipelined(pipe, "task_result", [result_id], [store.result_key(result_id)])
        for store in stores
    ]
    with reporting_unavailable(client):
        replies = pipe.execute()
    return next(
        (found for decode, raw in zip(decoders, replies, strict=True) if (found := decode(raw))),
        None,
    )
