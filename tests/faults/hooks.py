"""Faults injected inside a worker process, from its environment (``FaultsConfig.ready()``).

``CONVOY_FAULT_PLAN="<script>:<n>:<when>:<action>"``
    at the ``n``-th call of convoy's Lua script ``<script>`` (claim, renew, ack, fail, handback,
    jamguard, ...) in this process, ``before`` or ``after`` Redis executed it: ``kill`` this
    process with SIGKILL, ``drop`` the reply (raise ``redis.ConnectionError``, as a
    connection that died at that moment would), ``stop`` the process (SIGSTOP) there, or
    ``sleep`` a second in the calling thread only (a slow call, the others go on). The
    interleaving is exact, not timed. Firing is logged (``faults-<pid>.jsonl``) before the
    fault happens, so a test knows it was reached.
``CONVOY_FAULT_CONNECTS=1``
    log every TCP connection attempt redis-py makes (``connects-<pid>.jsonl``), to tell a
    reconnect backoff from a busy loop.
``CONVOY_FAULT_CLOCK_OFFSET=<seconds>``
    shift this process's wall clock (``time.time``), for machines without libfaketime.
``CONVOY_FAULT_SLEEP_FIX=1``
    under libfaketime 0.9.10, Python 3.11+'s ``time.sleep`` fails with EINVAL (its absolute
    ``clock_nanosleep`` is mistranslated); sleep on a lock's timed wait instead, which works.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import redis
from redis.commands.core import Script

from . import journal

PLAN_ENV = "CONVOY_FAULT_PLAN"
CONNECTS_ENV = "CONVOY_FAULT_CONNECTS"
CLOCK_ENV = "CONVOY_FAULT_CLOCK_OFFSET"
SLEEP_FIX_ENV = "CONVOY_FAULT_SLEEP_FIX"


def install() -> None:
    """Install the hooks this process's environment asks for (none outside fault scenarios)."""
    if os.environ.get(PLAN_ENV):
        _install_plan(os.environ[PLAN_ENV])
    if os.environ.get(CONNECTS_ENV):
        _count_connects()
    if os.environ.get(CLOCK_ENV):
        _shift_clock(float(os.environ[CLOCK_ENV]))
    if os.environ.get(SLEEP_FIX_ENV):
        time.sleep = lambda seconds: threading.Event().wait(max(0.0, seconds)) and None


def parse_plan(plan: str) -> tuple[str, int, str, str]:
    """Split a plan; raise ValueError naming what is wrong."""
    script, n, when, action = plan.split(":")
    if when not in ("before", "after") or action not in ("kill", "drop", "stop", "sleep"):
        raise ValueError(f"bad plan {plan!r}: want <script>:<n>:before|after:<action>")
    return script, int(n), when, action


def _install_plan(plan: str) -> None:
    target, nth, when, action = parse_plan(plan)
    from django_convoy.store import scripts

    lock = threading.Lock()
    calls = [0]
    original_run = scripts.run

    # Every script convoy sends outside a pipeline goes through scripts.run (store/scripts.py).
    def run(client: Any, script: Script, keys: Any, args: Any) -> Any:
        if getattr(script, "convoy_name", None) != target:
            return original_run(client, script, keys, args)
        with lock:
            calls[0] += 1
            fire = calls[0] == nth
        if fire and when == "before":
            _fire(plan, action)
        reply = original_run(client, script, keys, args)
        if fire and when == "after":
            _fire(plan, action)
        return reply

    scripts.run = run


def _fire(plan: str, action: str) -> None:
    journal.append("faults", {"t": journal.now_ns(), "pid": os.getpid(), "plan": plan})
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached: SIGKILL is not deferred
    if action == "stop":
        # Every thread stops until the test sends SIGCONT. Sent to this thread, not the
        # process: a process-directed SIGSTOP wakes the main thread to start the stop, and on a
        # busy machine this thread could go on past the hook (send its call, even log the
        # reply) before the main thread got a CPU.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
        return
    if action == "sleep":
        time.sleep(1.0)  # this thread only: the call goes out a second late
        return
    raise redis.ConnectionError(f"fault injection {plan}: connection lost")


def _count_connects() -> None:
    original = redis.connection.Connection._connect

    def connect(self: Any) -> Any:
        try:
            sock = original(self)
        except Exception as exc:
            record = {"t": journal.now_ns(), "pid": os.getpid(), "ok": False, "error": str(exc)}
            journal.append("connects", record)
            raise
        journal.append("connects", {"t": journal.now_ns(), "pid": os.getpid(), "ok": True})
        return sock

    redis.connection.Connection._connect = connect


def _shift_clock(offset: float) -> None:
    real_time, real_time_ns, real_gmtime = time.time, time.time_ns, time.gmtime
    time.time = lambda: real_time() + offset
    time.time_ns = lambda: real_time_ns() + int(offset * 1e9)
    time.gmtime = lambda secs=None: real_gmtime(time.time() if secs is None else secs)
