"""Producer processes for the cluster tests (spawned: each sets Django up itself)."""

from __future__ import annotations

from typing import Any


def add_many(convoy: dict[str, Any], ids: list[str], barrier: Any) -> dict[str, int]:
    """Add ``ids`` to every queue of ``convoy`` at once with the other producers; count adds."""
    import django

    django.setup()
    from django.conf import settings

    settings.CONVOY = convoy  # before any use: nothing has read the setting yet
    from django_convoy import get_queue

    queues = [get_queue(name) for name in convoy["QUEUES"]]
    barrier.wait()
    return {q.name: sum(result.added for result in q.add_jobs(ids)) for q in queues}
