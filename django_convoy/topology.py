"""Where convoy's data lives when it is more than one server: a Redis Cluster or a Sentinel group.

Parses the ``redis+cluster://`` and ``redis+sentinel://`` URLs (``rediss+...`` for TLS) and the
``CLUSTER_NODES`` / ``SENTINELS`` settings into a :class:`Topology`; ``cluster.py`` makes the
clients. Errors are ``ValueError`` messages that ``conf.py`` turns into system-check problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from redis.connection import URL_QUERY_ARGUMENT_PARSERS

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}


@dataclass(frozen=True)
class Topology:
    """Where the data lives: a Redis Cluster (startup nodes) or a Sentinel-watched primary."""

    kind: str  # "cluster" | "sentinel"
    nodes: tuple[tuple[str, int], ...]  # cluster startup nodes, or the sentinels
    service: str = ""  # the Sentinel service (master) name
    options: dict[str, Any] = field(default_factory=dict)  # for the data servers
    sentinel_options: dict[str, Any] = field(default_factory=dict)  # for the sentinels

    def describe(self) -> str:
        """Say where convoy connects, without credentials."""
        hosts = ", ".join(f"{host}:{port}" for host, port in self.nodes)
        if self.kind == "cluster":
            return f"the Redis Cluster of {hosts}"
        return f"Sentinel service {self.service!r} (sentinels {hosts})"


def is_topology_url(url: Any) -> bool:
    """Whether ``url`` names a Redis Cluster or a Sentinel group rather than one server."""
    return isinstance(url, str) and url.split("://", 1)[0] in CLUSTER_SCHEMES + SENTINEL_SCHEMES


def parse_nodes(nodes: Any, kind: str, setting: str) -> tuple[tuple[str, int], ...]:
    """Parse ``["host:port", ("host", port), ...]``; raise ValueError naming a bad entry."""
    if isinstance(nodes, str) or not isinstance(nodes, Sequence) or not nodes:
        raise ValueError(
            f"{setting} must be a non-empty list of 'host:port' strings, not {nodes!r}."
        )
    parsed = []
    for node in nodes:
        if isinstance(node, str):
            host, port = _host_port(node, DEFAULT_PORTS[kind], setting)
        elif (
            isinstance(node, Sequence)
            and len(node) == 2
            and isinstance(node[0], str)
            and isinstance(node[1], int)
            and not isinstance(node[1], bool)
        ):
            host, port = node[0], node[1]
        else:
            raise ValueError(f"{setting} has {node!r}; use 'host:port' or a (host, port) pair.")
        if not host or not 0 < port < 65536:
            raise ValueError(f"{setting} has {node!r}: the host is empty or the port invalid.")
        parsed.append((host, port))
    return tuple(parsed)


def _host_port(text: str, default_port: int, setting: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        return text.strip(), default_port
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:7000
    if not port.isdigit():
        raise ValueError(f"{setting} has {text!r}: the port must be a number.")
    return host, int(port)


def parse_url(url: str) -> Topology:
    """Parse a ``redis+cluster://`` or ``redis+sentinel://`` URL; raise ValueError if it is bad.

    ``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``
    ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?options]``

    The credentials are the data servers'; a Sentinel's own go in the ``sentinel_username``
    and ``sentinel_password`` options. ``rediss+...`` turns TLS on for every connection.
    """
    scheme, _, rest = url.partition("://")
    kind = "cluster" if scheme in CLUSTER_SCHEMES else "sentinel"
    setting = f"The {scheme}:// URL"
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    nodes = parse_nodes([h for h in hosts.split(",") if h], kind, f"{setting}'s host list")
    options: dict[str, Any] = {}
    if userinfo:
        username, colon, password = userinfo.partition(":")
        if username:
            options["username"] = unquote(username)
        if colon:
            options["password"] = unquote(password)
    sentinel_options: dict[str, Any] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        value = values[-1]
        if name in ("sentinel_username", "sentinel_password"):
            sentinel_options[name.removeprefix("sentinel_")] = value
            continue
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        try:
            options[name] = parser(value) if parser else value
        except (TypeError, ValueError):
            raise ValueError(f"{setting} has an invalid value for {name!r}: {value!r}.") from None
    if scheme.startswith("rediss"):
        options["ssl"] = True
    parts = [unquote(part) for part in path.split("/") if part]
    if kind == "cluster":
        if parts not in ([], ["0"]) or options.get("db", 0) != 0:
            raise ValueError(f"{setting} names a database; a Redis Cluster has only 0.")
        options.pop("db", None)
        return Topology("cluster", nodes, options=options)
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(
            f"{setting} must end with /<service>[/<db>], e.g. "
            "redis+sentinel://127.0.0.1:26379/mymaster/0."
        )
    if len(parts) == 2:
        options["db"] = int(parts[1])
    if options.get("ssl"):
        sentinel_options["ssl"] = True
    return Topology("sentinel", nodes, parts[0], options, sentinel_options)


def topology_from_settings(
    url: str | None,
    cluster_nodes: Any = None,
    sentinels: Any = None,
    sentinel_service: Any = None,
    sentinel_options: Any = None,
) -> Topology | None:
    """The topology the ``CONVOY`` connection settings name; None for a single server."""
    if url is not None and is_topology_url(url):
        topology = parse_url(url)
        if topology.kind == "sentinel" and sentinel_options:
            return Topology(
                "sentinel",
                topology.nodes,
                topology.service,
                topology.options,
                {**topology.sentinel_options, **sentinel_options},
            )
        return topology
    if cluster_nodes is not None:
        return Topology("cluster", parse_nodes(cluster_nodes, "cluster", "CLUSTER_NODES"))
    if sentinels is not None:
        return Topology(
            "sentinel",
            parse_nodes(sentinels, "sentinel", "SENTINELS"),
            sentinel_service,
            sentinel_options=dict(sentinel_options or {}),
        )
    return None
