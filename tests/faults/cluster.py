"""A scenario's world: a redis-server of its own, and the real processes it starts and kills.

``Processes`` runs workers, jam guards and producers as real ``manage.py`` / ``python -m``
subprocesses against one Redis, with the settings of ``tests.faults.settings`` (or a module
building on them), each in a process group of its own, its output in a file, its runs in the
journal. A ``Cluster`` is ``Processes`` with a private redis-server (so it may kill, restart or
wipe it); tests/cluster points plain ``Processes`` at a Redis Cluster or a Sentinel group.
Scenarios that need isolated queues in parallel give each case a database number of its own.
``close()`` kills whatever is left, by process group, and stops the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from django.conf import settings

from django_convoy.queue import Queue
from django_convoy.testing.servers import RedisServer

from . import journal
from .journal import RunRecord
from .queues import queue_config

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.faults.settings"
PREFIX = settings.CONVOY["KEY_PREFIX"]
FAULTKEYS = (
    "CONVOY_FAULT_PLAN",
    "CONVOY_FAULT_CONNECTS",
    "CONVOY_FAULT_CLOCK_OFFSET",
    "CONVOY_FAULT_SLEEP_FIX",
)


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def in_parallel(scenarios: dict[str, Callable[[], object]], timeout: float = 300) -> dict:
    """Run scenarios at once, a thread each (they mostly wait on their processes); return
    name -> what each returned, or the exception it raised (for its own test to re-raise)."""
    results: dict[str, object] = {}

    def run(name: str, scenario: Callable[[], object]) -> None:
        try:
            results[name] = scenario()
        except BaseException as exc:  # noqa: B036 - handed to the test that owns it
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=item, name=f"scenario-{item[0]}", daemon=True)
        for item in scenarios.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, TimeoutError(f"{name}: still running")) for name in scenarios}


def outcome(results: dict, name: str) -> object:
    """What scenario ``name`` returned; re-raise what it raised."""
    result = results[name]
    if isinstance(result, BaseException):
        raise result
    return result


class Proc:
    """A subprocess a scenario started: its own process group, its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<Proc {self.name} pid={self.pid}>"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process only (not its children)."""
        if self.alive:
            os.kill(self.pid, signum)

    def wait(self, timeout: float = 30) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then wait; SIGKILL the group if it does not exit in time."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.reap()
            return None

    def reap(self) -> None:
        """Kill this process and anything left in its group (orphaned pool children)."""
        for signum in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass


class Processes:
    """The real processes of one scenario against the Redis at ``redis_url``, and what they did.

    ``settings_module``: their Django settings; ``env``: more of their environment.
    """

    def __init__(
        self,
        root: Path,
        redis_url: str,
        *,
        settings_module: str = SETTINGS,
        env: dict[str, str] | None = None,
    ):
        self.root = root
        self.journal_dir = root / "journal"
        self.logs_dir = root / "logs"
        for directory in (self.journal_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.settings_module = settings_module
        self.extra_env = dict(env or {})
        self.procs: list[Proc] = []

    def url(self, db: int = 0, port: int | None = None) -> str:
        """The URL the processes get; only a private server offers other databases and ports."""
        if db or port is not None:
            raise ValueError(f"only {self.redis_url} here, not db={db}, port={port}")
        return self.redis_url

    # -- processes ------------------------------------------------------------------------------

    def env(self, db: int = 0, port: int | None = None, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in FAULTKEYS}
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings_module,
            PYTHONUNBUFFERED="1",
            CONVOY_TEST_REDIS_URL=self.url(db, port),
            **{journal.ENV: str(self.journal_dir)},
            **self.extra_env,
            **extra,
        )
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.logs_dir / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def manage(
        self,
        name: str,
        *args: str,
        db: int = 0,
        port: int | None = None,
        prefix: tuple[str, ...] = (),
        **extra: str,
    ) -> Proc:
        """Start ``manage.py <args>`` (``prefix``: a wrapper command such as faketime)."""
        argv = [*prefix, sys.executable, str(ROOT / "manage.py"), *args]
        return self.spawn(name, argv, self.env(db, port, **extra))

    def worker(self, *queues: str, name: str = "worker", options: tuple[str, ...] = (), **kw):
        """Start ``convoy_worker`` on ``queues``."""
        return self.manage(name, "convoy_worker", *queues, *options, **kw)

    def jamguard(self, *queues: str, name: str = "jamguard", interval: float = 0.25, **kw):
        """Start ``convoy_jamguard`` polling ``queues`` every ``interval`` seconds."""
        return self.manage(name, "convoy_jamguard", *queues, "--interval", str(interval), **kw)

    def producer(self, name: str, *args: str, db: int = 0, port: int | None = None) -> Proc:
        """Start ``python -m tests.faults.produce <args>``."""
        argv = [sys.executable, "-m", "tests.faults.produce", *args]
        return self.spawn(name, argv, self.env(db, port))

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every process still running, all at once, and wait for them."""
        threads = [
            threading.Thread(target=proc.stop, args=(timeout,)) for proc in self.procs if proc.alive
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str):
        """``wait_for``, failing at once if one of the scenario's processes crashed (exit
        status 1: a Python traceback, e.g. the code under test failed to import)."""

        def met() -> object:
            for proc in self.procs:
                if proc.popen.poll() == 1:
                    raise AssertionError(f"{proc.name} crashed:\n{proc.output()[-3000:]}")
            return condition()

        return wait_for(met, timeout, what)

    # -- what happened ----------------------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        """Every run the journal recorded, in start order."""
        return journal.read_runs(self.journal_dir)

    def faults_fired(self) -> list[dict]:
        return journal.read_records(self.journal_dir, "faults")

    def connects(self) -> list[dict]:
        return journal.read_records(self.journal_dir, "connects")

    def close(self) -> None:
        """Kill every process the scenario started that is still there."""
        for proc in self.procs:
            proc.reap()


class Cluster(Processes):
    """A private redis-server and the processes of one scenario."""

    def __init__(self, root: Path, *, redis_args: tuple[str, ...] = ()):
        self.redis_args = ("--databases", "64", *redis_args)
        self.server = RedisServer(directory=root / "redis", args=self.redis_args).start()
        self.port = self.server.port
        self._clients: dict[int, redis.Redis] = {}
        super().__init__(root, self.url())

    # -- Redis ----------------------------------------------------------------------------------

    def url(self, db: int = 0, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A client of this scenario's server (the suite's own; never the machine's Redis)."""
        if db not in self._clients:
            self._clients[db] = redis.Redis.from_url(
                self.url(db), decode_responses=True, socket_timeout=10
            )
        return self._clients[db]

    def queue(self, name: str, db: int = 0) -> Queue:
        """The queue ``name`` as the scenario's processes see it, for the test to drive."""
        return Queue(queue_config(name), PREFIX, self.client(db))

    def kill_redis(self) -> None:
        """SIGKILL redis-server: no shutdown, no final fsync, as a crash or OOM kill."""
        self.server.process.kill()
        self.server.process.wait()
        self.server.process = None

    def start_redis(self) -> None:
        """Start redis-server again on the same port, directory and persistence settings."""
        for client in self._clients.values():
            client.connection_pool.disconnect()
        self.server = RedisServer(
            port=self.port, directory=self.root / "redis", args=self.redis_args
        ).start()

    def close(self) -> None:
        """Kill every process the scenario started that is still there, then the server."""
        super().close()
        for client in self._clients.values():
            client.close()
        self.server.stop()
