"""`make demo`: queue monster-truck jobs, watch a worker run them, then keep the admin running.

Starts everything it needs (an embedded redis-server unless REDIS_URL is set, a worker, the
development server) and stops all of it on Ctrl-C. DEMO_SECONDS=N stops it after N seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")


def main() -> None:
    server = None
    if not os.environ.get("REDIS_URL"):
        from django_convoy.testing.servers import RedisServer

        var = ROOT / "testproject" / "var"
        server = RedisServer(directory=var / "redis").start()
        os.environ["REDIS_URL"] = server.url
        print(f"Started an embedded redis-server at {server.url}")
    children: list[subprocess.Popen] = []
    try:
        run_demo(children)
    except KeyboardInterrupt:
        print("\nStopping...")
    finally:
        for child in children:
            child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=35)
            except subprocess.TimeoutExpired:
                child.kill()
        if server:
            server.stop()
        print("Stopped everything the demo started.")


def manage(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, **kwargs)


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
    print("The worker keeps running: queue more jobs from `python manage.py shell`.")
    print("Press Ctrl-C to stop everything.")
    seconds = float(os.environ.get("DEMO_SECONDS", "inf"))
    end = time.monotonic() + seconds
    while time.monotonic() < end and all(child.poll() is None for child in children):
        time.sleep(0.5)


if __name__ == "__main__":
    main()
