"""Every Lua script convoy runs, declared once: its file, whether it writes, how its reply reads.

Each queue script is the shared prelude (key order, helpers) followed by its own file in
``lua/``; redis-py runs them with EVALSHA and loads them again after a ``SCRIPT FLUSH`` or a
Redis restart. ``QueueStore`` (``queues.py``) and ``Fleet`` (``fleet.py``) are the only callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from . import replies

# A decoder gets the queue's name, the script's ARGV and its raw reply.
Decoder = Callable[[str, list[Any], Any], Any]


@dataclass(frozen=True)
class ScriptSpec:
    """One script: ``writes`` makes ``WAIT_REPLICAS`` wait after it; an ``add`` raises
    ``NotReplicated`` when too few replicas confirm it (its producer must know)."""

    name: str
    decode: Decoder
    writes: bool = True
    add: bool = False
    queue: bool = True  # over one queue's keys, after the prelude


SPECS: dict[str, ScriptSpec] = {
    spec.name: spec
    for spec in (
        ScriptSpec("add", replies.added, add=True),
        ScriptSpec("claim", replies.claimed),
        ScriptSpec("ack", replies.as_is),
        ScriptSpec("keep_result", replies.as_int),
        ScriptSpec("progress", replies.as_int),
        ScriptSpec("ack_claim", replies.acked_and_claimed),
        ScriptSpec("fail", replies.as_is),
        ScriptSpec("renew", replies.as_is),
        ScriptSpec("handback", replies.as_is),
        ScriptSpec("jam_guard", replies.jam_rows),
        ScriptSpec("inspect", replies.job, writes=False),
        ScriptSpec("enqueued_at", replies.as_ints, writes=False),
        ScriptSpec("stats", replies.counts, writes=False),
        ScriptSpec("purge", replies.as_int),
        ScriptSpec("remove", replies.as_is),
        ScriptSpec("cancel", replies.as_is),
        ScriptSpec("requeue", replies.as_is),
        ScriptSpec("resume", replies.as_int),  # not a MULTI: runs on a Redis Cluster too
        ScriptSpec("release_orphans", replies.as_is),
        ScriptSpec("browse", replies.page_rows, writes=False),
        ScriptSpec("running", replies.held_runs, writes=False),
        # Django's Tasks framework backend (backends/): runs and their results.
        ScriptSpec("task_add", replies.task_added, add=True),
        ScriptSpec("task_start", replies.as_is),
        ScriptSpec("task_finish", replies.as_int),
        ScriptSpec("task_result", replies.as_is, writes=False),
        # Schedules (schedules/): a tick's job is added to its queue in the same step.
        ScriptSpec("tick", replies.ticked),
        # The workers registry: its own keys, not a queue's.
        ScriptSpec("heartbeat", replies.as_int, queue=False),
    )
}


def _source(name: str) -> str:
    return files("django_convoy.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def prelude() -> str:
    """The prelude every queue script starts with (``benchmarks/w1_floor.py`` times it alone)."""
    return _source("_prelude")


@cache
def source(name: str) -> str:
    """The text Redis runs for script ``name``."""
    return prelude() + "\n" + _source(name) if SPECS[name].queue else _source(name)


class Scripts:
    """The scripts registered on one client, by name; each knows its name (``convoy_name``)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.by_name: dict[str, Script] = {}
        for name in SPECS:
            script = client.register_script(source(name))
            script.convoy_name = name
            self.by_name[name] = script


_by_client: dict[int, Scripts] = {}


def run(client: redis.Redis, script: Script, keys: tuple[str, ...], args: list[Any]) -> Any:
    """Send ``script`` by EVALSHA, loading it again if Redis lost it (a restart, a failover, a
    ``SCRIPT FLUSH``): ``NOSCRIPT`` means it did not run, so sending it again cannot run it twice.
    The one way a script goes to Redis outside a pipeline (``tests/faults/hooks.py`` wraps it);
    it spares the layers of ``Script.__call__``, a few microseconds of every add and ack."""
    try:
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


def scripts_for(client: redis.Redis) -> Scripts:
    """Return the scripts bound to ``client`` (registered once per client)."""
    found = _by_client.get(id(client))
    if found is None or found.client is not client:
        found = _by_client[id(client)] = Scripts(client)
    return found
