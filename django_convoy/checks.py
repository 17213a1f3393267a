"""System checks: a misconfigured ``CONVOY`` shows in ``manage.py check``, not at first use."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import find_problems
from .decorators import registered_processors, registered_tasks
from .schedules.config import schedule_problems


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Report every problem of the ``CONVOY`` setting and of tasks bound to missing queues."""
    raw = getattr(settings, "CONVOY", None)
    errors = [Error(p.msg, hint=p.hint or None, id=p.id) for p in find_problems(raw)]
    queues = raw.get("QUEUES") if isinstance(raw, dict) else None
    if not isinstance(queues, dict):
        return errors
    configured = ", ".join(sorted(map(str, queues))) or "none"
    for task in registered_tasks().values():
        if task.queue not in queues:
            errors.append(
                Error(
                    f"Task {task.name} is bound to queue {task.queue!r}, which is not in "
                    f"CONVOY['QUEUES'] (configured: {configured}).",
                    hint="Add the queue to CONVOY['QUEUES'] or change the task's queue=.",
                    obj=task.name,
                    id="convoy.E012",
                )
            )
    errors += [Error(p.msg, hint=p.hint or None, id=p.id) for p in schedule_problems(raw)]
    for queue, func in registered_processors().items():
        if queue not in queues:
            errors.append(
                Error(
                    f"Processor {func.__module__}.{func.__qualname__} is registered for queue "
                    f"{queue!r}, which is not in CONVOY['QUEUES'] (configured: {configured}).",
                    id="convoy.E013",
                )
            )
    return errors


@register("convoy", deploy=True)
def check_redis_eviction(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when Redis may evict convoy's keys (W001), is nearly full (W005), or is older than
    Redis 7 with a maxmemory (W006) (``manage.py check --deploy``; talks to Redis)."""
    from . import connection
    from .exceptions import RedisUnavailable
    from .health import eviction_warning, memory_warnings

    if find_problems(getattr(settings, "CONVOY", None)):
        return []  # check_settings reports those
    try:
        client = connection.get_client()  # a cluster client connects as it is made
        with connection.reporting_unavailable(client):
            client.ping()
    except RedisUnavailable as exc:
        return [Warning(f"Could not check Redis's eviction policy: {exc}", id="convoy.W002")]
    warning = eviction_warning(client)
    found = [Warning(warning, id="convoy.W001")] if warning else []
    return found + [Warning(message, id=code) for code, message in memory_warnings(client)]


@register("convoy", deploy=True)
def check_replication(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn where a Redis server keeps no persistence (W003: a single server, or any of a
    Cluster or Sentinel group), and where WAIT_REPLICAS asks for more replicas than a primary
    has (W004). Talks to Redis."""
    from . import connection
    from .conf import get_config
    from .connection.cluster import replication_warnings
    from .exceptions import RedisUnavailable

    if find_problems(getattr(settings, "CONVOY", None)):
        return []
    config = get_config()
    try:
        client = connection.get_client()
        with connection.reporting_unavailable(client):
            found = replication_warnings(client, config.topology is not None, config.wait_replicas)
    except RedisUnavailable:
        return []  # check_redis_eviction reports it (convoy.W002)
    return [Warning(msg, hint=hint, id=code) for code, msg, hint in found]
