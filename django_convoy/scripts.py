"""Load the Lua scripts of ``lua/`` and bind them to a client.

Each queue script is the shared prelude (key order, helpers) followed by its own file; redis-py
runs them with EVALSHA and loads them again after a ``SCRIPT FLUSH`` or a Redis restart.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import redis
from redis.commands.core import Script

QUEUE_SCRIPTS = (
    "add",
    "claim",
    "ack",
    "ack_claim",
    "fail",
    "renew",
    "handback",
    "jamguard",
    "inspect",
    "stats",
    "purge",
    "remove",
    "requeue",
    "resume",  # not a MULTI: runs on a Redis Cluster as every other script does
    "release_orphans",
    "browse",
    # Django's Tasks framework backend (backends.py, results.py): runs and their results.
    "task_add",
    "task_start",
    "task_finish",
    "task_result",
)


def _source(name: str) -> str:
    return files("django_convoy").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def prelude() -> str:
    """The prelude every queue script starts with (``benchmarks/w1_floor.py`` times it alone)."""
    return _source("_prelude")


@cache
def _queue_source(name: str) -> str:
    return prelude() + "\n" + _source(name)


class Scripts:
    """The scripts registered on one client, as attributes named after their files."""

    add: Script
    claim: Script
    ack: Script
    ack_claim: Script
    fail: Script
    renew: Script
    handback: Script
    jamguard: Script
    inspect: Script
    stats: Script
    purge: Script
    remove: Script
    requeue: Script
    resume: Script
    release_orphans: Script
    browse: Script
    task_add: Script
    task_start: Script
    task_finish: Script
    task_result: Script
    heartbeat: Script

    def __init__(self, client: redis.Redis):
        for name in QUEUE_SCRIPTS:
            setattr(self, name, client.register_script(_queue_source(name)))
        self.heartbeat = client.register_script(_source("heartbeat"))


_by_client: dict[int, Scripts] = {}


def scripts_for(client: redis.Redis) -> Scripts:
    """Return the scripts bound to ``client`` (registered once per client)."""
    found = _by_client.get(id(client))
    if found is None or found.add.registered_client is not client:
        found = _by_client[id(client)] = Scripts(client)
    return found
