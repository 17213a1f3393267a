"""``WAIT_REPLICAS``: make each write wait until replicas have it, so a failover keeps it.

Redis replicates asynchronously: a primary answers a write before any replica has it, and a
failover to a replica that missed it loses the write though the client saw it succeed. With
``WAIT_REPLICAS = n``, every write script is followed by ``WAIT n WAIT_TIMEOUT_MS`` on the same
connection, so on the same primary (in a cluster: the node serving the queue's slot, following
``MOVED`` and ``ASK`` by hand, since the ``WAIT`` must follow the write on its connection).

When fewer replicas confirm in time the write still stands on the primary. An add then raises
``NotReplicated`` (its producer must know; adding the id again is safe), and any other write
(a claim, an ack, a renewal) logs a warning: the worker carries on, and if that primary fails
before its replica catches up, the run's fencing token and the jam guard deal with a job that
comes back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from redis.commands.core import Script
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, TryAgainError

from ..conf import get_config
from ..connection.cluster import is_cluster
from ..exceptions import NotReplicated
from .scripts import ScriptSpec

logger = logging.getLogger(__name__)

REDIRECTS = 16  # as redis-py's cluster client: give up after this many MOVED / ASK / TRYAGAIN


def wait_for() -> tuple[int, int] | None:
    """(replicas, timeout ms) to WAIT for after a write script; None if none is set."""
    try:
        config = get_config()
    except ImproperlyConfigured:
        return None  # a Queue built by hand, outside a project with a CONVOY setting
    if not config.wait_replicas:
        return None
    return config.wait_replicas, config.wait_timeout_ms


def run_and_wait(
    client: Any,
    spec: ScriptSpec,
    script: Script,
    keys: Sequence[str],
    args: Sequence[Any],
    wait: tuple[int, int],
) -> Any:
    """Run a write script, then WAIT on its connection; act on a short count (module doc)."""
    replicas, timeout_ms = wait
    started = time.perf_counter()
    if is_cluster(client):
        reply, acked = _on_slot_primary(client, script, keys, args, replicas, timeout_ms)
    else:
        reply, acked = _pipelined(client, script, keys, args, replicas, timeout_ms)
    if acked < replicas:
        queue = keys[0].rsplit(":", 1)[0]
        message = (
            f"only {acked} of {replicas} replicas confirmed a write to {queue} within "
            f"{timeout_ms} ms ({(time.perf_counter() - started) * 1000:.0f} ms): the primary has "
            "it, but a failover now could lose it"
        )
        if spec.add:
            raise NotReplicated(
                f"The add reached the primary, but {message}. Adding it again is safe."
            )
        logger.warning("%s (WAIT_REPLICAS)", message)
    return reply


def _pipelined(
    client: redis.Redis, script: Script, keys: Sequence[str], args: Sequence[Any], *wait: int
) -> tuple[Any, int]:
    """EVALSHA then WAIT in one pipeline: one connection, one round trip."""
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", *wait)
        reply, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):
            client.script_load(script.script)
            continue
        for result in (reply, acked):
            if isinstance(result, Exception):
                raise result
        return reply, int(acked)
    raise NoScriptError(f"script {script.sha} could not be loaded")


def _on_slot_primary(
    cluster: Any, script: Script, keys: Sequence[str], args: Sequence[Any], *wait: int
) -> tuple[Any, int]:
    """As ``_pipelined``, on the node serving the keys' slot, following redirections."""
    slot = cluster.keyslot(keys[0])
    asking = None  # the node an ASK sent us to, for one attempt
    for _ in range(REDIRECTS):
        node = asking or cluster.nodes_manager.get_node_from_slot(slot)
        node_client = cluster.get_redis_connection(node)
        pipe = node_client.pipeline(transaction=False)
        if asking:
            pipe.execute_command("ASKING")
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", *wait)
        try:
            *_, reply, acked = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            cluster.nodes_manager.initialize()  # the next call finds the new primary
            raise
        asking = None
        if isinstance(reply, NoScriptError):
            node_client.script_load(script.script)
        elif isinstance(reply, AskError) and not isinstance(reply, MovedError):
            asking = cluster.nodes_manager.get_node(host=reply.host, port=reply.port)
            if asking is None:
                cluster.nodes_manager.initialize()
        elif isinstance(reply, MovedError | ClusterDownError):
            if isinstance(reply, ClusterDownError):
                time.sleep(0.25)  # a failover is under way
            cluster.nodes_manager.initialize()
        elif isinstance(reply, TryAgainError):
            time.sleep(0.05)  # a slot half migrated: its keys are on two nodes for a moment
        elif isinstance(reply, Exception):
            raise reply
        else:
            if isinstance(acked, Exception):
                raise acked
            return reply, int(acked)
    raise ClusterDownError(f"slot {slot} kept moving: {REDIRECTS} redirections")
