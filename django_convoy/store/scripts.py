"""Every Lua script convoy runs, declared once: its file, whether it writes, how its reply reads,
and what it may do when Redis is full.

Each queue script is its own file in ``lua/`` after the definitions of the shared prelude (key
order, helpers) that it uses, directly or through another (``prelude_for``): Redis runs a
script's whole text on every call, and defining all of the prelude's helpers each time cost an
add as much as its own Lua. redis-py runs them with EVALSHA and loads them again after a
``SCRIPT FLUSH`` or a Redis restart. ``QueueStore`` (``queues.py``) and ``Fleet``
(``fleet.py``) are the only callers.

When Redis is full (``maxmemory`` reached, ``noeviction``), what a script may do is its
``oom``, which becomes the first line of its text, where Redis 7 reads script flags:

``ALLOW``
    ``#!lua flags=allow-oom``: it runs and writes all the same. The steps that keep runs alive
    and end them (renew, heartbeat, ack, fail, hand-back, jam guard...): they barely grow
    memory, and refusing them would jam running jobs, which would then run twice.
``DENY``
    ``#!lua``: refused as a whole before it starts (``RedisFull``), never half-way. Adds and
    claims: a claim would start jobs whose leases cannot be kept.
``COMPAT`` (no first line)
    Redis's rule for scripts without flags: refused at its first write that needs memory,
    unless it wrote before (then it goes on). The read-only scripts, and the operator's.

Redis 6.2 knows no flags and cannot compile the line: there a script runs without it (after
one refused load), as ``COMPAT``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from . import replies

ALLOW, DENY, COMPAT = "allow", "deny", "compat"
SHEBANG = {ALLOW: "#!lua flags=allow-oom\n", DENY: "#!lua\n", COMPAT: ""}

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
    oom: str = COMPAT  # when Redis is full: ALLOW, DENY or COMPAT (module doc)


SPECS: dict[str, ScriptSpec] = {
    spec.name: spec
    for spec in (
        ScriptSpec("add", replies.added, add=True, oom=DENY),
        ScriptSpec("claim", replies.claimed, oom=DENY),
        ScriptSpec("ack", replies.as_is, oom=ALLOW),
        # A run's return value: refused when full (the run stands; its value is not kept).
        ScriptSpec("keep_result", replies.as_int, oom=DENY),
        # A run's progress: small, and a task must not fail for want of room to say it.
        ScriptSpec("progress", replies.as_int, oom=ALLOW),
        # Refused when full, the reporter acks alone (ack): the claim half must not run.
        ScriptSpec("ack_claim", replies.acked_and_claimed, oom=DENY),
        ScriptSpec("fail", replies.as_is, oom=ALLOW),
        ScriptSpec("renew", replies.as_is, oom=ALLOW),
        ScriptSpec("handback", replies.as_is, oom=ALLOW),
        ScriptSpec("jam_guard", replies.jam_guarded, oom=ALLOW),
        ScriptSpec("inspect", replies.job, writes=False),
        ScriptSpec("enqueued_at", replies.as_ints, writes=False),
        ScriptSpec("stats", replies.counts, writes=False),
        ScriptSpec("still_owns", replies.as_bool, writes=False),
        ScriptSpec("purge", replies.as_int),
        ScriptSpec("remove", replies.as_is),
        ScriptSpec("cancel", replies.as_is),
        ScriptSpec("requeue", replies.as_is),
        ScriptSpec("resume", replies.as_int),  # not a MULTI: runs on a Redis Cluster too
        ScriptSpec("release_orphans", replies.as_is, oom=ALLOW),
        ScriptSpec("browse", replies.page_rows, writes=False),
        ScriptSpec("groups", replies.group_rows, writes=False),
        ScriptSpec("running", replies.held_runs, writes=False),
        # Django's Tasks framework backend (backends/): runs and their results. A run that
        # started may record that it did, and its result.
        ScriptSpec("task_add", replies.task_added, add=True, oom=DENY),
        ScriptSpec("task_start", replies.as_is, oom=ALLOW),
        ScriptSpec("task_finish", replies.as_int, oom=ALLOW),
        ScriptSpec("task_result", replies.as_is, writes=False),
        # Schedules (schedules/): a tick's job is added to its queue in the same step.
        ScriptSpec("tick", replies.ticked, oom=DENY),
        # The workers registry: its own keys, not a queue's.
        ScriptSpec("heartbeat", replies.as_int, queue=False, oom=ALLOW),
    )
}


def _source(name: str) -> str:
    return files("django_convoy.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def prelude() -> str:
    """The whole prelude, whose definitions queue scripts start with (``prelude_for``;
    ``benchmarks/w1_floor.py`` times it alone)."""
    return _source("_prelude")


# The prelude's top level is definitions only: each "local function name(" or "local a, b =",
# with the comment lines just above it, up to the next one.
_DEFINES = re.compile(r"^local (?:function (\w+)\(|([\w, ]+?) =)")
_WORD = re.compile(r"[A-Za-z_]\w*")
_COMMENT = re.compile(r"--[^\n]*")


@cache
def _definitions() -> tuple[tuple[frozenset[str], frozenset[str], str], ...]:
    """The prelude's top-level definitions in order: (names defined, words used, text)."""
    lines = prelude().splitlines(keepends=True)
    starts = []
    for i, line in enumerate(lines):
        if line.startswith("local "):
            while i > 0 and lines[i - 1].startswith("--"):
                i -= 1
            starts.append(i)
    found = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        text = "".join(lines[start:end])
        head = next(line for line in lines[start:end] if line.startswith("local "))
        match = _DEFINES.match(head)
        if match is None:  # a top level this reading does not know: fail here, not in Redis
            raise ValueError(f"the prelude's {head.strip()!r} is not a definition")
        names = frozenset(n.strip() for n in (match[1] or match[2]).split(","))
        found.append((names, frozenset(_WORD.findall(_COMMENT.sub("", text))) - names, text))
    return tuple(found)


def prelude_for(body: str) -> str:
    """The prelude's definitions that ``body`` uses, directly or through one another, in the
    prelude's order. Any word of the body that a definition defines counts as a use (a
    definition taken for nothing costs a little time, one missed would fail in Redis)."""
    wanted = set(_WORD.findall(_COMMENT.sub("", body)))
    kept = []
    for names, uses, text in reversed(_definitions()):  # a definition uses only earlier ones
        if names & wanted:
            kept.append(text)
            wanted |= uses
    return "".join(reversed(kept))


@cache
def source(name: str, flags: bool = True) -> str:
    """The text Redis runs for script ``name``; ``flags=False``: without its flags line, for a
    Redis that knows none (6.2)."""
    spec = SPECS[name]
    body = _source(name)
    text = prelude_for(body) + "\n" + body if spec.queue else body
    return SHEBANG[spec.oom] + text if flags else text


class Scripts:
    """The scripts registered on one client, by name; each knows its name (``convoy_name``)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.by_name: dict[str, Script] = {}
        for name in SPECS:
            script = client.register_script(source(name))
            script.convoy_name = name
            self.by_name[name] = script


def unflag_if_unknown(script: Script, exc: redis.ResponseError) -> bool:
    """If Redis could not compile ``script``'s flags line (Redis < 7), make it run without from
    now on (another thread may have already) and return True: the caller tries once more."""
    message = str(exc)
    if "Error compiling script" not in message or "'#'" not in message:
        return False
    plain = source(script.convoy_name, flags=False)
    if script.script != plain:
        script.script = plain
        script.sha = hashlib.sha1(plain.encode()).hexdigest()
    return True


def unflagging(script: Script, send: Callable[[], Any]) -> Any:
    """``send()`` the script; if Redis could not compile its flags line (Redis < 7), once more
    without it (``unflag_if_unknown``). Every caller that sends a script goes through this."""
    try:
        return send()
    except redis.ResponseError as exc:
        if not unflag_if_unknown(script, exc):
            raise
        return send()


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
