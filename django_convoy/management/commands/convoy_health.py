"""``convoy_health``: a liveness or readiness probe that needs neither the admin nor a web server.

Exit status 0: healthy, with one line on stdout saying what was checked. Exit status 1: not,
with one line on stderr saying why (``CommandError``). Nothing else is part of the contract:
the wording may change, the exit status and the options will not.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_convoy import connection
from django_convoy.conf import get_config
from django_convoy.exceptions import ConvoyError
from django_convoy.store import Fleet, WorkerRecord, worker_alive


class Command(BaseCommand):
    help = (
        "Exit 0 if Redis answers (and, with --worker-pid or --max-age, if this host's worker "
        "sent a heartbeat recently), else exit 1 saying why: a probe for systemd, Docker or "
        "Kubernetes."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--worker-pid",
            type=int,
            metavar="PID",
            help="Also check the convoy_worker with this process id on this host (1 in a "
            "container whose command is the worker): it runs, and its heartbeat is fresh.",
        )
        parser.add_argument(
            "--max-age",
            type=float,
            metavar="SECONDS",
            help="Oldest heartbeat that counts as fresh (default: two heartbeat intervals, the "
            "rule the admin uses for 'gone'). Alone, checks the worker of this host that beat "
            "last.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            metavar="SECONDS",
            help="Give up on Redis after this long (default 5; keep it below the probe's own).",
        )

    def handle(self, *args: Any, worker_pid: int | None, max_age: float | None, **options: Any):
        timeout = options["timeout"]
        if timeout <= 0 or (max_age is not None and max_age <= 0):
            raise CommandError("--timeout and --max-age must be > 0.")
        if worker_pid is not None and not _process_exists(worker_pid):
            raise CommandError(f"unhealthy: no process {worker_pid} on this host.")
        check_worker = worker_pid is not None or max_age is not None
        outcome: list[Any] = []
        probe = threading.Thread(
            target=lambda: outcome.append(_probe(check_worker, worker_pid, max_age)),
            daemon=True,  # a Redis that never answers must not keep the probe alive
        )
        started = time.monotonic()
        probe.start()
        probe.join(timeout)
        if not outcome:
            raise CommandError(f"unhealthy: Redis did not answer within {timeout:g} s.")
        healthy, message = outcome[0]
        if not healthy:
            raise CommandError(f"unhealthy: {message}")
        took = (time.monotonic() - started) * 1000
        self.stdout.write(f"healthy: Redis answered in {took:.1f} ms{message}")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by another user
    return True


def _probe(check_worker: bool, pid: int | None, max_age: float | None) -> tuple[bool, str]:
    """(healthy, what was found): Redis answers; the worker's heartbeat is fresh if asked."""
    try:
        config = get_config()
        client = connection.get_client()
        with connection.reporting_unavailable(client):
            client.ping()
            if not check_worker:
                return True, ""
            now_ms, records = Fleet(config.key_prefix, client).snapshot()
    except ConvoyError as exc:
        return False, str(exc)
    except Exception as exc:  # a probe reports, whatever went wrong
        return False, f"{type(exc).__name__}: {exc}"
    return _worker_verdict(records, now_ms, pid, max_age)


def _worker_verdict(
    records: list[WorkerRecord], now_ms: int, pid: int | None, max_age: float | None
) -> tuple[bool, str]:
    host = socket.gethostname()
    mine = [
        record
        for record in records
        if record.info.get("host") == host and (pid is None or record.info.get("pid") == pid)
    ]
    who = f"pid {pid} on host {host}" if pid is not None else f"host {host}"
    if not mine:
        return False, f"no convoy_worker of {who} is registered (not started, or gone an hour)."
    record = max(mine, key=lambda r: _beat(r))
    age = (now_ms - _beat(record)) / 1000
    fresh = (
        age <= max_age
        if max_age is not None
        else worker_alive(now_ms, str(_beat(record)), record.every_ms)
    )
    if not fresh:
        limit = f"{max_age:g} s" if max_age is not None else "two heartbeat intervals"
        return False, f"worker {record.id} last beat {age:.1f} s ago (more than {limit})."
    return True, f"; worker {record.id} beat {age:.1f} s ago"


def _beat(record: WorkerRecord) -> int:
    beat = record.beat_ms
    return int(beat) if beat and beat.isdigit() else record.registry_beat_ms
