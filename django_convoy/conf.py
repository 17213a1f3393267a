"""The ``CONVOY`` setting: defaults, validation, and a cached, typed view of it.

Validation returns problems instead of raising, so that ``manage.py check`` can report all of
them at once (see ``checks.py``); code that uses the settings gets the same messages as an
``ImproperlyConfigured`` error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .limits import RateLimit, parse_rate, rate_problem
from .observability.config import MetricsConfig, metrics_config, metrics_problems
from .topology import is_topology_url, parse_nodes, parse_url, topology_from_settings

QUEUE_DEFAULTS: dict[str, Any] = {
    "CONCURRENCY": 1,
    "JOB_TIMEOUT": 600.0,
    "LEASE": 10.0,
    "MAX_ATTEMPTS": 1,
    "RETRY_BACKOFF": 1.0,
    "MAX_JAMS": 3,
    "FAILED_TTL": 7 * 24 * 3600.0,
    "MAX_PAYLOAD_BYTES": 512 * 1024,
    "RESULT_TTL": 24 * 3600.0,
    "MAX_RESULT_BYTES": 64 * 1024,
}
# key: (accepted types, smallest valid value, whether that value itself is allowed)
QUEUE_RULES: dict[str, tuple[tuple[type, ...], float, bool]] = {
    "CONCURRENCY": ((int,), 1, True),
    "JOB_TIMEOUT": ((int, float), 0, True),
    "LEASE": ((int, float), 0, False),
    "MAX_ATTEMPTS": ((int,), 1, True),
    "RETRY_BACKOFF": ((int, float), 0, True),
    "MAX_JAMS": ((int,), 0, True),
    "FAILED_TTL": ((int, float), 0, False),
    "MAX_PAYLOAD_BYTES": ((int,), 1, True),
    "RESULT_TTL": ((int, float), 0, True),
    "MAX_RESULT_BYTES": ((int,), 1, True),
    "GROUP_CONCURRENCY": ((int,), 1, True),
}
# Flow control's rate limits (limits.py): strings such as "100/s burst 200", checked apart.
RATE_KEYS = ("RATE_LIMIT", "GROUP_RATE_LIMIT")
TOP_LEVEL_KEYS = ("REDIS_URL", "CONNECTION", "KEY_PREFIX", "QUEUES", "REDIS_OPTIONS")
# Redis Cluster, Sentinel, and waiting for replicas (topology.py, cluster.py, replication.py).
TOPOLOGY_KEYS = ("CLUSTER_NODES", "SENTINELS", "SENTINEL_SERVICE", "SENTINEL_OPTIONS")
WAIT_KEYS = ("WAIT_REPLICAS", "WAIT_TIMEOUT_MS")
# SCHEDULE: schedules/config.py checks it; METRICS: observability's settings.
TOP_LEVEL_KEYS += TOPOLOGY_KEYS + WAIT_KEYS + ("SCHEDULE", "METRICS")
RATE_HINT = (
    "A count per second, minute or hour, with an optional burst (how many may start at "
    'once; by default the count): "100/s", "30/m", "1000/h burst 50".'
)
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


@dataclass(frozen=True)
class QueueConfig:
    """The settings of one queue, with defaults filled in."""

    name: str
    concurrency: int = QUEUE_DEFAULTS["CONCURRENCY"]
    job_timeout: float = QUEUE_DEFAULTS["JOB_TIMEOUT"]
    lease: float = QUEUE_DEFAULTS["LEASE"]
    max_attempts: int = QUEUE_DEFAULTS["MAX_ATTEMPTS"]
    retry_backoff: float = QUEUE_DEFAULTS["RETRY_BACKOFF"]
    max_jams: int = QUEUE_DEFAULTS["MAX_JAMS"]
    failed_ttl: float = QUEUE_DEFAULTS["FAILED_TTL"]
    max_payload_bytes: int = QUEUE_DEFAULTS["MAX_PAYLOAD_BYTES"]
    result_ttl: float = QUEUE_DEFAULTS["RESULT_TTL"]  # 0: keep no return value
    max_result_bytes: int = QUEUE_DEFAULTS["MAX_RESULT_BYTES"]
    # Flow control (limits.py): None is no limit.
    rate_limit: RateLimit | None = None
    group_concurrency: int | None = None
    group_rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class ConvoySettings:
    """The whole ``CONVOY`` setting, validated."""

    queues: dict[str, QueueConfig]
    redis_url: str | None = None
    connection: str | None = None
    key_prefix: str = "convoy"
    redis_options: dict[str, Any] = field(default_factory=dict)
    topology: Any = None  # cluster.Topology for a Redis Cluster or a Sentinel group, else None
    wait_replicas: int = 0  # WAIT for this many replicas after each write (0: do not wait)
    wait_timeout_ms: int = 500
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # convoy/metrics


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings, as a system check will report it."""

    id: str
    msg: str
    hint: str = ""


def find_problems(raw: Any) -> list[Problem]:
    """Return every problem in a raw ``CONVOY`` setting (empty when it is valid)."""
    if raw is None:
        return [
            Problem(
                "convoy.E001",
                "The CONVOY setting is missing.",
                'Add CONVOY = {"REDIS_URL": ..., "QUEUES": {...}} to your settings.',
            )
        ]
    if not isinstance(raw, dict):
        return [Problem("convoy.E001", f"CONVOY must be a dict, not {type(raw).__name__}.")]
    problems = [
        Problem(
            "convoy.E002",
            f"CONVOY has an unknown key {key!r}.",
            f"Valid keys: {', '.join(TOP_LEVEL_KEYS)}.",
        )
        for key in raw
        if key not in TOP_LEVEL_KEYS
    ]
    problems += _connection_problems(raw)
    problems += _topology_problems(raw) + _wait_problems(raw)
    problems += [Problem("convoy.E025", *found) for found in metrics_problems(raw.get("METRICS"))]
    prefix = raw.get("KEY_PREFIX", "convoy")
    if not isinstance(prefix, str) or not KEY_PREFIX.fullmatch(prefix):
        problems.append(
            Problem(
                "convoy.E004",
                f"CONVOY['KEY_PREFIX'] {prefix!r} is not a valid key prefix.",
                "Use 1-100 characters from letters, digits and _ . : - (no braces: convoy adds "
                "the Redis Cluster hash tags itself).",
            )
        )
    options = raw.get("REDIS_OPTIONS", {})
    if not isinstance(options, dict):
        problems.append(
            Problem(
                "convoy.E005",
                f"CONVOY['REDIS_OPTIONS'] must be a dict, not {type(options).__name__}.",
                "It holds keyword arguments for redis.Redis, e.g. {'socket_timeout': 5}.",
            )
        )
    queues = raw.get("QUEUES")
    if not isinstance(queues, dict) or not queues:
        problems.append(
            Problem(
                "convoy.E006",
                "CONVOY['QUEUES'] must be a non-empty dict of queue name -> settings.",
                'e.g. "QUEUES": {"default": {}}',
            )
        )
        return problems
    for name, queue in queues.items():
        problems += _queue_problems(name, queue)
    return problems


def _connection_problems(raw: dict) -> list[Problem]:
    url, alias = raw.get("REDIS_URL"), raw.get("CONNECTION")
    nodes = [key for key in ("CLUSTER_NODES", "SENTINELS") if raw.get(key) is not None]
    if nodes and (url is not None or alias is not None or len(nodes) > 1):
        given = [key for key in ("REDIS_URL", "CONNECTION", *nodes) if raw.get(key) is not None]
        return [Problem("convoy.E003", f"CONVOY sets {' and '.join(given)}; set one.")]
    if nodes:
        return []  # _topology_problems checks them
    if url is None and alias is None:
        return [
            Problem(
                "convoy.E003",
                "CONVOY has no connection: set REDIS_URL or CONNECTION.",
                'e.g. "REDIS_URL": "redis://127.0.0.1:6379/0", or "CONNECTION": '
                '"default" to use that django-redis cache\'s connection settings.',
            )
        ]
    if url is not None and alias is not None:
        return [Problem("convoy.E003", "CONVOY sets both REDIS_URL and CONNECTION; set one.")]
    if url is not None and (
        not isinstance(url, str)
        or not url.startswith(("redis://", "rediss://", "unix://"))
        and not is_topology_url(url)
    ):
        return [
            Problem(
                "convoy.E003",
                "CONVOY['REDIS_URL'] is not a Redis URL.",
                "It must start with redis://, rediss://, unix://, redis+cluster://, "
                "rediss+cluster://, redis+sentinel:// or rediss+sentinel://.",
            )
        ]
    if alias is not None:
        caches = getattr(settings, "CACHES", {})
        if alias not in caches:
            return [
                Problem(
                    "convoy.E003",
                    f"CONVOY['CONNECTION'] names the cache {alias!r}, which is not in "
                    f"CACHES (configured: {', '.join(caches) or 'none'}).",
                )
            ]
        if "django_redis" not in str(caches[alias].get("BACKEND", "")):
            return [
                Problem(
                    "convoy.E003",
                    f"CONVOY['CONNECTION'] names the cache {alias!r}, whose BACKEND is "
                    "not django-redis.",
                    "Use a django_redis.cache.RedisCache cache, or set REDIS_URL.",
                )
            ]
    return []


def _topology_problems(raw: dict) -> list[Problem]:
    """Problems of the Redis Cluster (E014) and Sentinel (E015) settings."""
    url, sentinel = raw.get("REDIS_URL"), raw.get("SENTINELS") is not None
    if is_topology_url(url):
        try:
            sentinel = parse_url(url).kind == "sentinel"
        except ValueError as exc:
            if "+cluster" in url.split("://")[0]:
                return [Problem("convoy.E014", str(exc), 'e.g. "redis+cluster://h1:7000,h2:7000"')]
            return [Problem("convoy.E015", str(exc), 'e.g. "redis+sentinel://h1:26379/mymaster/0"')]
    problems = []
    if raw.get("CLUSTER_NODES") is not None:
        try:
            parse_nodes(raw["CLUSTER_NODES"], "cluster", "CONVOY['CLUSTER_NODES']")
        except ValueError as exc:
            problems.append(
                Problem("convoy.E014", str(exc), 'e.g. "CLUSTER_NODES": ["10.0.0.1:7000"]')
            )
    if raw.get("SENTINELS") is not None:
        try:
            parse_nodes(raw["SENTINELS"], "sentinel", "CONVOY['SENTINELS']")
        except ValueError as exc:
            problems.append(
                Problem("convoy.E015", str(exc), 'e.g. "SENTINELS": ["10.0.0.1:26379"]')
            )
        service = raw.get("SENTINEL_SERVICE")
        if not isinstance(service, str) or not service:
            problems.append(
                Problem(
                    "convoy.E015",
                    f"CONVOY['SENTINEL_SERVICE'] must name the Sentinel service (the master "
                    f"name the sentinels monitor), not {service!r}.",
                    'e.g. "SENTINEL_SERVICE": "mymaster"',
                )
            )
    elif "SENTINEL_SERVICE" in raw:
        problems.append(
            Problem(
                "convoy.E015",
                "CONVOY['SENTINEL_SERVICE'] is set without CONVOY['SENTINELS'].",
                "A redis+sentinel:// URL names its service in its path instead.",
            )
        )
    options = raw.get("SENTINEL_OPTIONS")
    if options is not None and not sentinel:
        problems.append(
            Problem(
                "convoy.E015",
                "CONVOY['SENTINEL_OPTIONS'] is set, but no Sentinel is configured.",
                "Use it with SENTINELS or a redis+sentinel:// REDIS_URL.",
            )
        )
    elif options is not None and not isinstance(options, dict):
        problems.append(
            Problem(
                "convoy.E015",
                f"CONVOY['SENTINEL_OPTIONS'] must be a dict, not {type(options).__name__}.",
                "It holds keyword arguments for the connections to the sentinels, e.g. "
                "{'password': ..., 'ssl': True}.",
            )
        )
    return problems


def _wait_problems(raw: dict) -> list[Problem]:
    """Problems of WAIT_REPLICAS and WAIT_TIMEOUT_MS (E016)."""
    problems = []
    for key, smallest in (("WAIT_REPLICAS", 0), ("WAIT_TIMEOUT_MS", 1)):
        value = raw.get(key, smallest)
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            problems.append(
                Problem(
                    "convoy.E016",
                    f"CONVOY['{key}'] must be an integer >= {smallest}, not {value!r}.",
                    "WAIT_REPLICAS: replicas that must have each write (0: do not wait); "
                    "WAIT_TIMEOUT_MS: how long to wait for them, in milliseconds.",
                )
            )
    return problems


def _queue_problems(name: Any, queue: Any) -> list[Problem]:
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        return [
            Problem(
                "convoy.E007",
                f"Queue name {name!r} is not valid.",
                "Use 1-100 characters from letters, digits and _ . - (the name goes "
                "inside a Redis Cluster hash tag).",
            )
        ]
    if not isinstance(queue, dict):
        return [
            Problem(
                "convoy.E008",
                f"The settings of queue {name!r} must be a dict, not {type(queue).__name__}.",
            )
        ]
    problems = []
    for key, value in queue.items():
        if key in RATE_KEYS:
            message = rate_problem(value, f"{key} of queue {name!r}")
            if message:
                problems.append(Problem("convoy.E026", message, RATE_HINT))
            continue
        if key not in QUEUE_RULES:
            problems.append(
                Problem(
                    "convoy.E009",
                    f"Queue {name!r} has an unknown key {key!r}.",
                    f"Valid keys: {', '.join((*QUEUE_RULES, *RATE_KEYS))}.",
                )
            )
            continue
        types, smallest, inclusive = QUEUE_RULES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "an integer" if types == (int,) else "a number"
            problems.append(
                Problem("convoy.E010", f"Queue {name!r}: {key} must be {kind}, not {value!r}.")
            )
        elif value < smallest or (value == smallest and not inclusive):
            bound = f">= {smallest}" if inclusive else f"> {smallest}"
            problems.append(
                Problem("convoy.E011", f"Queue {name!r}: {key} must be {bound}, not {value!r}.")
            )
    return problems


@cache
def get_config() -> ConvoySettings:
    """Return the validated ``CONVOY`` setting; raise ``ImproperlyConfigured`` if it is wrong."""
    raw = getattr(settings, "CONVOY", None)
    problems = find_problems(raw)
    if problems:
        raise ImproperlyConfigured(" ".join(p.msg for p in problems))
    queues = {name: _queue_config(name, queue) for name, queue in raw["QUEUES"].items()}
    return ConvoySettings(
        queues=queues,
        redis_url=raw.get("REDIS_URL"),
        connection=raw.get("CONNECTION"),
        key_prefix=raw.get("KEY_PREFIX", "convoy"),
        redis_options=dict(raw.get("REDIS_OPTIONS", {})),
        topology=topology_from_settings(
            raw.get("REDIS_URL"),
            raw.get("CLUSTER_NODES"),
            raw.get("SENTINELS"),
            raw.get("SENTINEL_SERVICE"),
            raw.get("SENTINEL_OPTIONS"),
        ),
        wait_replicas=raw.get("WAIT_REPLICAS", 0),
        wait_timeout_ms=raw.get("WAIT_TIMEOUT_MS", 500),
        metrics=metrics_config(raw.get("METRICS")),
    )


def _queue_config(name: str, queue: dict[str, Any]) -> QueueConfig:
    values = {key.lower(): value for key, value in queue.items() if key not in RATE_KEYS}
    for key in RATE_KEYS:
        if queue.get(key) is not None:
            values[key.lower()] = parse_rate(queue[key], f"{key} of queue {name!r}")
    return QueueConfig(name=name, **values)


@receiver(setting_changed)
def _forget_config(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CONVOY", "CACHES"):
        get_config.cache_clear()  # the client forgets itself too (connection/client.py)
