"""`make demo`: queue monster-truck jobs, watch a worker run them, then keep the admin running.

Starts everything it needs (a redis-server on a socket in testproject/var unless REDIS_URL is
set, a worker, the development server) and stops all of it on Ctrl-C, SIGTERM or SIGHUP: the
worker first (it hands back what it runs), then the development server, then Redis.
DEMO_SECONDS=N stops it after N seconds; DEMO_PORT chooses the server's port; DEMO_VAR the
directory of its database and Redis socket.

Everything it starts runs in a session of its own, so that the terminal's Ctrl-C reaches only
the demo, which then stops them in order (a redis-server that got the SIGINT too would die
before the worker could hand its jobs back). On Linux each also dies with the demo, should the
demo itself be killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")


def _die_with_the_demo() -> None:
    """In a child, before it runs: ask Linux for a SIGTERM when the demo dies (PR_SET_PDEATHSIG),
    so that a demo killed with SIGKILL leaves nothing running."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C and SIGTERM still stop everything


# Popen options of everything the demo starts (see the module's docstring).
OWN_SESSION = {"start_new_session": True, "preexec_fn": _die_with_the_demo}


def stop_demo(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_demo)
    server = None
    children: list[subprocess.Popen] = []
    try:
        if not os.environ.get("REDIS_URL"):
            server = start_redis()
        run_demo(children)
    except KeyboardInterrupt:
        print("\nStopping: the worker first, then the development server, then Redis...")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        for child in children:  # in the order they started: the worker first
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=40)  # the worker's --grace is 30 s
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if server:
            server.stop()
        print("Stopped everything the demo started.")


def start_redis():
    """Start the demo's redis-server on the socket the project's settings point at."""
    import redis

    from django_convoy.testing.servers import RedisServer, find_redis_server
    from testproject.settings import VAR, demo_redis_socket

    sock = demo_redis_socket()
    try:
        redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()
    except (redis.ConnectionError, FileNotFoundError):
        pass
    else:
        print(f"Using the redis-server already answering at unix://{sock} (not the demo's own,")
        print("so it keeps running after the demo; stop it with redis-cli -s ... shutdown).")
        return None
    binary = find_redis_server()
    server = RedisServer(unix_socket=sock, directory=VAR / "redis", popen=OWN_SESSION).start()
    print(f"Started {binary} at {server.url} (stops with the demo)")
    return server


def manage(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, **OWN_SESSION, **kwargs
    )


def run_demo(children: list[subprocess.Popen]) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from django_convoy import get_queue
    from testproject.trucks.tasks import inspect_truck, wash_truck

    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    if not users.filter(username="demo").exists():
        users.create_superuser("demo", "demo@example.com", "demo")

    queue = get_queue("monsterTrucks")
    queue.purge()
    print("\nQueueing jobs (each id twice: the second add is refused while the first waits)")
    for truck in range(1, 9):
        for _ in range(2):
            result = wash_truck.enqueue(truck)
            print(
                f"  wash_truck.enqueue({truck}) -> id={result.id} added={result.added} "
                f"state={result.state}"
            )
    for truck in (12, 13, 26):
        inspect_truck.enqueue(truck)
    wash_truck.using(delay=5).enqueue(99)
    print(f"Stats: {queue.stats()}")

    print("\nStarting a worker: python manage.py convoy_worker monsterTrucks")
    children.append(manage("convoy_worker", "monsterTrucks"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = queue.stats()
        print(f"  {stats}")
        if not (stats["queued"] or stats["processing"] or stats["scheduled"]):
            break
        time.sleep(1)
    print("Trucks 13 and 26 failed inspection (see the failed tab in the admin).")

    port = os.environ.get("DEMO_PORT", "8000")
    children.append(manage("runserver", f"127.0.0.1:{port}", "--noreload"))
    print(f"\nAdmin: http://127.0.0.1:{port}/admin/  (login: demo / demo)")
    print("The worker keeps running: queue more jobs from another terminal, e.g.")
    print(
        "  .venv/bin/python manage.py shell -c "
        '"from testproject.trucks.tasks import wash_truck; print(wash_truck.enqueue(42))"'
    )
    if os.environ.get("REDIS_URL"):
        print("  (with the same REDIS_URL in its environment: the settings read it there).")
    else:
        print("  (the project's settings point every manage.py command at the demo's Redis).")
    print("Press Ctrl-C to stop everything.")
    seconds = float(os.environ.get("DEMO_SECONDS", "inf"))
    end = time.monotonic() + seconds
    while time.monotonic() < end and all(child.poll() is None for child in children):
        time.sleep(0.5)


if __name__ == "__main__":
    main()
