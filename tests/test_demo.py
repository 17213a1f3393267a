"""`make demo` as a user runs it: a shell in another terminal reaches its Redis, and Ctrl-C
stops the worker first, then Redis, leaving nothing running and printing no error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from django_convoy.testing.servers import free_port
from tests.helpers import ROOT, wait_until

ALARMS = ("Traceback", "ERROR", "CRITICAL", "failed:", "could not", "Error")


def demo_env(var: Path) -> dict[str, str]:
    """The environment of a user's terminal: no REDIS_URL, the demo's own settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CONVOY_TEST_REDIS_URL", "TESTPROJECT_DB")
    }
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DEMO_VAR": str(var),
        "PYTHONUNBUFFERED": "1",
    }


def children_of(pid: int) -> set[int]:
    """Every live process descended from ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_demo_shell_reaches_the_demos_redis_and_ctrl_c_stops_everything_quietly(tmp_path):
    env = demo_env(tmp_path)
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "testproject/demo.py"],
            cwd=ROOT,
            env={**env, "DEMO_PORT": str(free_port()), "DEMO_SECONDS": "120"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=60, interval=0.2)
        started = children_of(demo.pid)
        assert len(started) >= 3  # redis-server, the worker, the development server

        # Another terminal: a shell with the same environment queues a job for the demo.
        shell = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SHELL],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert "truck-42 added=True" in shell.stdout
        assert "truck-42 done truck 42 is clean" in shell.stdout  # the demo's worker ran it
        assert children_of(demo.pid) >= started  # the shell started no server of its own
        assert not list(tmp_path.glob("**/redis.lock"))

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        assert demo.wait(timeout=60) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = log.read_text()
    assert "Stopped everything the demo started." in output
    wait_until(lambda: not any(alive(pid) for pid in started), timeout=10)
    stopping = output[output.index("Stopping:") :]
    assert not [alarm for alarm in ALARMS if alarm in stopping], stopping
    assert "worker" in stopping and " stopped: " in stopping  # it deregistered, Redis still up


SHELL = """
import time
from django_convoy import get_queue
from testproject.trucks.tasks import wash_truck
result = wash_truck.enqueue(42)
print(result.id, f"added={result.added}")
queue, deadline = get_queue("monsterTrucks"), time.monotonic() + 20
while queue.get_job("truck-42").state != "done" and time.monotonic() < deadline:
    time.sleep(0.1)
print(result.id, queue.get_job("truck-42").state, queue.get_job("truck-42").result.value)
"""
