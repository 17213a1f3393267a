"""Flow control on a queue's admin page: its limits, whether RATE_LIMIT holds it back now, and
a page of its groups (busiest first), read in Redis a page at a time (``lua/groups.lua``)."""

from __future__ import annotations

import math
from typing import Any

from ..queue import ConvoyQueue

GROUPS_PER_PAGE = 20


def flow_context(queue: ConvoyQueue, page: int, has_groups: bool) -> dict[str, Any] | None:
    """What the queue page shows of flow control, or None when the queue uses none of it."""
    config = queue.config
    limited = config.rate_limit or config.group_concurrency or config.group_rate_limit
    if not limited and not has_groups:
        return None
    found = queue.store.groups(max(0, page - 1) * GROUPS_PER_PAGE, GROUPS_PER_PAGE)
    pages = max(1, math.ceil(found.total / GROUPS_PER_PAGE))
    return {
        "rate_limit": str(config.rate_limit) if config.rate_limit else None,
        "group_concurrency": config.group_concurrency,
        "group_rate_limit": str(config.group_rate_limit) if config.group_rate_limit else None,
        "throttled_until": found.throttled_until,
        "groups": found.rows,
        "groups_total": found.total,
        "page": min(max(page, 1), pages),
        "pages": pages,
    }
