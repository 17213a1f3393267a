"""Start a private Sentinel group (a primary, its replicas, the Sentinels watching them), for the
Sentinel tests and benchmarks.

Built on :class:`~django_convoy.testing.servers.RedisServer` and the same redis-server binary:
a Sentinel is ``redis-server <conf> --sentinel``. Everything listens on free loopback ports and
is stopped (and its directory removed) by ``stop()``; nothing here touches another server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .servers import (
    RedisServer,
    find_redis_server,
    free_port,
    local_client,
    stop_process,
    wait_for,
)


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
        wait_for(lambda: local_client(self.port).ping(), timeout, f"sentinel on {self.port}")
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
        with local_client(self.primary.port) as client:
            return client.info("replication").get("connected_slaves", 0) >= len(self.replicas)

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with local_client(sentinel.port) as client:
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
            with local_client(sentinel.port) as client:
                return int(client.sentinel_get_master_addr_by_name(self.service)[1])
        raise LookupError("no sentinel is running")

    def healthy(self) -> bool:
        """Whether the sentinels name a running primary whose replicas are all in sync."""
        primary = self.server(self.current_primary_port())
        if primary.process is None:
            return False
        with local_client(primary.port) as client:
            info = client.info("replication")
        running = sum(1 for server in self.servers if server.process is not None)
        online = [k for k, v in info.items() if k.startswith("slave") and v["state"] == "online"]
        return info["role"] == "master" and len(online) >= running - 1

    def flush(self) -> None:
        """Empty the primary (its replicas follow)."""
        with local_client(self.current_primary_port()) as client:
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
