"""Start private Redis Clusters and Sentinel groups, for the cluster tests and benchmarks.

Built on :class:`~django_convoy.redis_server.RedisServer` and the same redis-server binary. A
cluster is assembled by hand through redis-py (``CLUSTER ADDSLOTSRANGE``, ``MEET``,
``REPLICATE``), so no ``redis-cli`` is needed. Everything listens on free loopback ports and
is stopped (and its directory removed) by ``stop()``; nothing here touches another server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .redis_server import RedisServer, find_redis_server, free_port, stop_process

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


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it is truthy; raise naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (redis.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def _client(port: int, **kwargs: object) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5, **kwargs)


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
        return _client(self.port)

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


class SentinelServer:
    """A redis-server running as a Sentinel (``redis-server <conf> --sentinel``)."""

    def __init__(self, directory: Path, monitor: tuple[str, int], service: str, quorum: int):
        self.port = free_port()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.directory}\n"
            f"logfile {self.directory / 'sentinel.log'}\n"
            f"sentinel monitor {service} {monitor[0]} {monitor[1]} {quorum}\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 5000\n"
            f"sentinel parallel-syncs {service} 1\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        self.process = subprocess.Popen(
            [find_redis_server(), str(self.config), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _client(self.port).ping(), timeout, f"sentinel on {self.port}")
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


class LocalSentinelGroup:
    """A primary with replicas, watched by ``sentinels`` Sentinels (quorum: a majority)."""

    def __init__(self, replicas: int = 1, sentinels: int = 3, service: str = "convoy"):
        self.directory = Path(tempfile.mkdtemp(prefix="convoy-sentinel-"))
        self.service = service
        self.primary = RedisServer(directory=self.directory / "primary")
        self.replicas = [
            RedisServer(
                directory=self.directory / f"replica-{n}",
                args=("--replicaof", "127.0.0.1", str(self.primary.port)),
            )
            for n in range(replicas)
        ]
        self.sentinels = [
            SentinelServer(
                self.directory / f"sentinel-{n}",
                ("127.0.0.1", self.primary.port),
                service,
                sentinels // 2 + 1,
            )
            for n in range(sentinels)
        ]

    @property
    def servers(self) -> list[RedisServer]:
        """The data servers (the first primary and its replicas, whatever their roles now)."""
        return [self.primary, *self.replicas]

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the group's sentinels, service and database 0."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def start(self, timeout: float = 30.0) -> LocalSentinelGroup:
        """Start the data servers, wait for replication, then the sentinels."""
        try:
            self.primary.start()
            for replica in self.replicas:
                replica.start()
            wait_for(self._replicas_in_sync, timeout, "the replicas to sync")
            for sentinel in self.sentinels:
                sentinel.start()
            wait_for(self._sentinels_agree, timeout, "the sentinels to see each other")
        except BaseException:
            self.stop()
            raise
        return self

    def _replicas_in_sync(self) -> bool:
        with _client(self.primary.port) as client:
            return client.info("replication").get("connected_slaves", 0) >= len(self.replicas)

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with _client(sentinel.port) as client:
                state = client.sentinel_master(self.service)
                if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return False
                if int(state["num-slaves"]) < len(self.replicas):
                    return False
        return True

    def current_primary_port(self) -> int:
        """The port the sentinels name as the primary now."""
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            with _client(sentinel.port) as client:
                return int(client.sentinel_get_master_addr_by_name(self.service)[1])
        raise LookupError("no sentinel is running")

    def healthy(self) -> bool:
        """Whether the sentinels name a running primary whose replicas are all in sync."""
        primary = self.server(self.current_primary_port())
        if primary.process is None:
            return False
        with _client(primary.port) as client:
            info = client.info("replication")
        running = sum(1 for server in self.servers if server.process is not None)
        online = [k for k, v in info.items() if k.startswith("slave") and v["state"] == "online"]
        return info["role"] == "master" and len(online) >= running - 1

    def flush(self) -> None:
        """Empty the primary (its replicas follow)."""
        with _client(self.current_primary_port()) as client:
            client.flushall()

    def server(self, port: int) -> RedisServer:
        """The data server listening on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        """Stop every sentinel and server and remove their files."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def kill(server: RedisServer) -> None:
    """SIGKILL a server this code started: it vanishes mid-write, as a crashed machine would."""
    if server.process and server.process.poll() is None:
        server.process.kill()
        server.process.wait()
    server.process = None


def _serves_slots(client: redis.Redis) -> bool:
    """Whether this node is a primary that serves at least one slot."""
    myself = client.execute_command("CLUSTER MYID")
    return any(
        primary[2] == myself for _, _, primary, *_ in client.execute_command("CLUSTER SLOTS")
    )
