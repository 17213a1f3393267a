"""Redis Cluster and Sentinel clients that run convoy's scripts, and every server they reach.

Every key of a queue carries the queue's name as a hash tag, so each script touches one slot
and redis-py's cluster client routes it to the queue's primary by key (following ``MOVED`` and
``ASK`` while slots move). What this module adds to redis-py, for a ``topology.Topology``:

- a cluster client whose pipelines can run scripts (redis-py's refuse ``EVALSHA`` and
  ``TIME``), loading a script on a node that lacks it (a replica just promoted, a node just
  added), and which reports "cannot reach the cluster" as a connection error;
- a Sentinel client (also from a django-redis Sentinel cache's pool);
- :func:`data_nodes`: every primary and replica, for the checks that ask each server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..topology import Topology

# Options that name one server, which a cluster or a sentinel group replaces with its own, and
# state a pool keeps in its connection options (not to be shared with a new pool).
SERVER_OPTIONS = ("host", "port", "path", "connection_class", "connection_pool", "himport_registry")

# Raised while a command could not run because the cluster is changing or a server is away:
# workers back off and try again. (ClusterError covers CLUSTERDOWN, MASTERDOWN and redis-py's
# "TTL exhausted" after too many redirections; TRYAGAIN comes during a slot's migration.)
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
)


def make_client(
    topology: Topology, options: dict[str, Any], defaults: dict[str, Any]
) -> redis.Redis | RedisCluster:
    """Return a client of ``topology``; ``options`` (REDIS_OPTIONS) go to every data server,
    over the URL's options, over ``defaults``."""
    kwargs = {**defaults, **topology.options, **options, "decode_responses": True}
    for name in SERVER_OPTIONS:
        kwargs.pop(name, None)
    if topology.kind == "cluster":
        kwargs.pop("db", None)
        # Keep serving the slots that have a primary while another's are failing over.
        kwargs.setdefault("require_full_coverage", False)
        try:
            return ConvoyRedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes],
                **kwargs,
            )
        except (RedisClusterException, *UNAVAILABLE_ERRORS) as exc:
            raise redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
    sentinel_kwargs = {
        **{k: v for k, v in kwargs.items() if k.startswith("socket_")},
        **topology.sentinel_options,
    }
    if sentinel_kwargs.pop("ssl", False):
        sentinel_kwargs["ssl"] = True
    manager = Sentinel(list(topology.nodes), sentinel_kwargs=sentinel_kwargs, **kwargs)
    client = manager.master_for(topology.service)
    client.convoy_topology = topology  # for describe()
    return client


def client_from_pool(
    source: Any, options: dict[str, Any], defaults: dict[str, Any]
) -> redis.Redis | None:
    """A decoded client of the primary a django-redis Sentinel pool serves; None otherwise."""
    if not isinstance(source, SentinelConnectionPool):
        return None
    kwargs = {
        **defaults,
        **{k: v for k, v in source.connection_kwargs.items() if k not in SERVER_OPTIONS},
        **options,
        "decode_responses": True,
    }
    if issubclass(source.connection_class, SSLConnection):
        kwargs["ssl"] = True
    client = source.sentinel_manager.master_for(source.service_name, **kwargs)
    client.convoy_topology = Topology(
        "sentinel",
        tuple(
            (
                s.connection_pool.connection_kwargs.get("host", "?"),
                s.connection_pool.connection_kwargs.get("port", 0),
            )
            for s in source.sentinel_manager.sentinels
        ),
        source.service_name,
    )
    return client


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def describe(client: Any) -> str | None:
    """Say where a cluster or Sentinel client connects (no credentials); None for others."""
    if isinstance(client, RedisCluster):
        hosts = ", ".join(node.name for node in client.get_primaries())
        return f"cluster primaries {hosts or 'unknown'}"
    topology = getattr(client, "convoy_topology", None)
    return topology.describe() if topology else None


def _outage(exc: RedisClusterException) -> bool:
    """Whether redis-py gave up on the cluster's topology (no node answered, slots missing)."""
    return (
        isinstance(exc, SlotNotCoveredError)
        or isinstance(exc.__cause__, redis.ConnectionError | redis.TimeoutError)
        or str(exc).startswith(("Redis Cluster cannot be connected", "All slots are not covered"))
    )


class ConvoyRedisCluster(RedisCluster):
    """redis-py's cluster client, with pipelines that run scripts and outages as errors."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.script_sources: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def register_script(self, script: str) -> Any:
        registered = super().register_script(script)
        self.script_sources[registered.sha] = script
        return registered

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            if _outage(exc):
                raise redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            raise

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ConvoyClusterPipeline:
        if transaction:
            raise RedisClusterException(
                "convoy uses no MULTI on a cluster: one script does what a transaction would."
            )
        pipe = ConvoyClusterPipeline(
            nodes_manager=self.nodes_manager,
            commands_parser=self.commands_parser,
            startup_nodes=self.nodes_manager.startup_nodes,
            result_callbacks=self.result_callbacks,
            cluster_response_callbacks=self.cluster_response_callbacks,
            read_from_replicas=self.read_from_replicas,
            load_balancing_strategy=self.load_balancing_strategy,
            reinitialize_steps=self.reinitialize_steps,
            retry=self.retry,
            lock=self._lock,
            transaction=False,
            event_dispatcher=self._event_dispatcher,
        )
        pipe.owner = self
        return pipe


class ConvoyClusterPipeline(ClusterPipeline):
    """A non-transactional cluster pipeline that also runs scripts and reads the time.

    Each command goes to the node serving its keys' slot (TIME to any node). A script that a
    node does not have is loaded on every primary and its command sent again: ``NOSCRIPT``
    means it did not run, so running it again cannot run it twice.
    """

    owner: ConvoyRedisCluster

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def time(self, **kwargs: Any) -> Any:
        return self.execute_command("TIME", **kwargs)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        queued = [
            (command.args, command.options) for command in self._execution_strategy.command_queue
        ]
        try:
            results = super().execute(raise_on_error=False)
        except RedisClusterException as exc:
            if _outage(exc):
                raise redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            raise
        for index, ((args, options), result) in enumerate(zip(queued, results, strict=True)):
            if isinstance(result, NoScriptError) and args[0] == "EVALSHA":
                self.owner.script_load(self.owner.script_sources[args[1]])
                results[index] = self.owner.execute_command(*args, **options)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


# -- every server -------------------------------------------------------------------------------


@contextmanager
def data_nodes(client: Any) -> Iterator[list[tuple[str, str, redis.Redis]]]:
    """Yield (name, role, client) for every data server: a cluster's nodes, a Sentinel
    group's primary and replicas, or the one server. Clients made here are closed after."""
    if isinstance(client, RedisCluster):
        # CLUSTER NODES, not the client's slot map: CLUSTER SLOTS leaves out a replica that
        # has not replicated a byte yet, and the map may predate a failover.
        manager = client.nodes_manager
        made, found = [], []
        try:
            for address, info in client.cluster_nodes().items():
                if "fail" in info["flags"] or "handshake" in info["flags"]:
                    continue  # a node the cluster already knows is down
                host, _, port = address.partition("@")[0].rpartition(":")
                node = client.get_node(host=host, port=int(port))
                if node is not None and node.redis_connection is not None:
                    server = node.redis_connection
                else:
                    server = manager.create_redis_node(host, int(port), **manager.connection_kwargs)
                    made.append(server)
                role = "primary" if "master" in info["flags"] else "replica"
                found.append((f"{host}:{port}", role, server))
            yield found
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            for server in made:
                server.close()
        return
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        kwargs = pool.connection_kwargs
        name = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '')}"
        yield [(name, "primary", client)]
        return
    manager, service = pool.sentinel_manager, pool.service_name
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in SERVER_OPTIONS}
    if issubclass(pool.connection_class, SSLConnection):
        kwargs["ssl"] = True
    addresses = [("primary", manager.discover_master(service))]
    addresses += [("replica", address) for address in manager.discover_slaves(service)]
    kind = SSLConnection if kwargs.pop("ssl", False) else redis.Connection
    made = [
        (
            f"{host}:{port}",
            role,
            redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=kind, host=host, port=port, **kwargs
                )
            ),
        )
        for role, (host, port) in addresses
    ]
    try:
        yield made
    finally:
        for _, _, node in made:
            node.close()


def replication_warnings(
    client: Any, replicated: bool, wait_replicas: int
) -> list[tuple[str, str, str]]:
    """(check id, message, hint) for each server that keeps no persistence (convoy.W003; a
    single server, or each of a cluster or Sentinel group when ``replicated``), and each primary
    with fewer replicas than ``wait_replicas`` (convoy.W004). A server that will not show its
    CONFIG (a managed service) is skipped."""
    found = []
    with data_nodes(client) as nodes:
        for name, role, node in nodes:
            try:
                config = {**node.config_get("appendonly"), **node.config_get("save")}
            except redis.ResponseError:
                config = {"appendonly": "unknown", "save": "unknown"}
            if config.get("appendonly") == "no" and not config.get("save"):
                found.append(("convoy.W003", *_no_persistence(name, role, replicated)))
            if wait_replicas and role == "primary":
                replicas = int(node.info("replication").get("connected_slaves", 0))
                if replicas < wait_replicas:
                    found.append(
                        (
                            "convoy.W004",
                            f"WAIT_REPLICAS is {wait_replicas}, but primary {name} has "
                            f"{replicas} connected replicas: every write to it waits "
                            "WAIT_TIMEOUT_MS, and every add raises NotReplicated.",
                            "Add replicas, or lower WAIT_REPLICAS.",
                        )
                    )
    return found


def _no_persistence(name: str, role: str, replicated: bool) -> tuple[str, str]:
    """The message and hint of convoy.W003 for one server."""
    if not replicated:
        return (
            f"Redis server {name} keeps no persistence (appendonly no, no save points): when "
            "it restarts it comes back empty, and every queued, scheduled, processing and "
            "failed job is lost (workers log it CRITICAL; nothing brings the jobs back).",
            "Set appendonly yes (appendfsync everysec) on the server; see the manual, "
            "docs/guarantees.rst (Limits).",
        )
    return (
        f"Redis server {name} ({role}) keeps no persistence (appendonly no, no save points): "
        "if it restarts before a replica takes over, it comes back empty and its replicas "
        "copy the empty data set: every job of its queues is lost.",
        "Set appendonly yes (appendfsync everysec) on every server; see the manual, "
        "docs/cluster.rst (What a failover can lose).",
    )
