"""Start a private Redis Cluster, for the cluster tests and benchmarks.

Built on :class:`~django_convoy.testing.servers.RedisServer` and the same redis-server binary. A
cluster is assembled by hand through redis-py (``CLUSTER ADDSLOTSRANGE``, ``MEET``,
``REPLICATE``), so no ``redis-cli`` is needed. Everything listens on free loopback ports and
is stopped (and its directory removed) by ``stop()``; nothing here touches another server.
A primary with replicas watched by Sentinels is ``sentinel.py``'s.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import redis

from .servers import RedisServer, free_port, local_client, wait_for

SLOTS = 16384
# Fast failure detection, so that a failover in a test takes a second or two, not fifteen.
CLUSTER_ARGS = (
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "1000",
    "--cluster-replica-validity-factor",
    "0",
    "--cluster-require-full-coverage",
    "no",
    "--repl-diskless-sync-delay",
    "0",
)


def free_cluster_port() -> int:
    """A free port for a cluster node: at most 55535, with its bus port (+10000) free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ClusterNodeServer(RedisServer):
    """One node of a local cluster: a RedisServer with cluster mode on."""

    def __init__(self, *, directory: Path):
        super().__init__(port=free_cluster_port(), directory=directory, args=CLUSTER_ARGS)

    def client(self) -> redis.Redis:
        """A plain client of this node alone."""
        return local_client(self.port)

    def node_id(self) -> str:
        with self.client() as client:
            return client.execute_command("CLUSTER MYID")


class LocalCluster:
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each."""

    def __init__(self, primaries: int = 3, replicas: int = 1):
        self.directory = Path(tempfile.mkdtemp(prefix="convoy-cluster-"))
        self.nodes = [
            ClusterNodeServer(directory=self.directory / f"node-{n}")
            for n in range(primaries * (1 + replicas))
        ]
        self.primaries, self.replicas = primaries, replicas

    @property
    def servers(self) -> list[ClusterNodeServer]:
        """Every node, whatever its role now."""
        return self.nodes

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of every node (clients discover the rest anyway)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/0"

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start the nodes, give each primary a range of slots, attach the replicas."""
        try:
            for node in self.nodes:
                node.start()
            self._assemble(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _assemble(self, timeout: float) -> None:
        primaries = self.nodes[: self.primaries]
        step = SLOTS // self.primaries
        for index, node in enumerate(primaries):
            first = index * step
            last = SLOTS - 1 if index == self.primaries - 1 else first + step - 1
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        with self.nodes[0].client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        wait_for(self._all_know_each_other, timeout, "cluster nodes to meet")
        for index, node in enumerate(self.nodes[self.primaries :]):
            primary = primaries[index % self.primaries]
            primary_id = primary.node_id()
            with node.client() as client:
                wait_for(
                    lambda c=client, p=primary_id: c.execute_command("CLUSTER REPLICATE", p),
                    timeout,
                    f"node {node.port} to replicate {primary.port}",
                )
        wait_for(self.healthy, timeout, "the cluster to be ok with every replica in sync")

    def _all_know_each_other(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                known = client.cluster("nodes").values()
                if len(known) < len(self.nodes) or any("handshake" in n["flags"] for n in known):
                    return False
        return True

    def healthy(self, replicas: bool = True) -> bool:
        """Whether every running node says the cluster is ok, every replica is in sync, and
        (with ``replicas``) every primary has all its replicas."""
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
                if (
                    replicas
                    and info["role"] == "master"
                    and _serves_slots(client)
                    and info.get("connected_slaves", 0) < self.replicas
                ):
                    return False
        return True

    def flush(self) -> None:
        """Empty every primary (replicas follow)."""
        for port in self.primary_ports():
            with self.node(port).client() as client:
                client.flushall()

    def migrate_slot(self, slot: int, target: ClusterNodeServer, pause: float = 0.0) -> int:
        """Move ``slot`` to ``target`` as a resharding tool does: IMPORTING / MIGRATING, then
        ``MIGRATE`` key by key (``pause`` s apart, so clients meet ASK and TRYAGAIN), then
        SETSLOT NODE everywhere. Return how many keys moved."""
        source = self.node(self._serving_port(slot))
        if source is target:
            return 0
        with source.client() as src, target.client() as dst:
            source_id, target_id = (
                src.execute_command("CLUSTER MYID"),
                dst.execute_command("CLUSTER MYID"),
            )
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            moved = 0
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
                time.sleep(pause)
            dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        for node in self.nodes:
            if node.process is not None and node not in (source, target):
                with node.client() as client:
                    if client.info("replication")["role"] == "master":
                        client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        return moved

    def _serving_port(self, slot: int) -> int:
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                for first, last, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    if first <= slot <= last:
                        return int(primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def node(self, port: int) -> ClusterNodeServer:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def primary_of(self, key: str) -> ClusterNodeServer:
        """The node currently serving ``key``'s slot, by the cluster's own view."""
        return self.node(self._serving_port(key_slot(key)))

    def primary_ports(self) -> list[int]:
        """Ports of the nodes that are primaries right now, each serving slots."""
        ports = set()
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                for _, _, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    ports.add(int(primary[1]))
                return sorted(ports)
        return []

    def restart(self, node: ClusterNodeServer) -> None:
        """Start a stopped node again on its port, with its directory (and cluster identity)."""
        node.start()

    def stop(self) -> None:
        """Stop every node and remove the cluster's files."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (the hash tag's, if it has one)."""
    from redis.crc import key_slot as crc_slot

    return crc_slot(key.encode())


def _serves_slots(client: redis.Redis) -> bool:
    """Whether this node is a primary that serves at least one slot."""
    myself = client.execute_command("CLUSTER MYID")
    return any(
        primary[2] == myself for _, _, primary, *_ in client.execute_command("CLUSTER SLOTS")
    )
