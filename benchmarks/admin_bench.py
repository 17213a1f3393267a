"""Response times of the admin dashboard with a big queue: ``python -m benchmarks.admin_bench``.

Fills a private redis-server with 100,000 queued and 10,000 failed jobs (``--queued``,
``--failed``), then times the overview, the JSON feed and a queue page (queued tab, first and
deep page; failed tab) through Django's test client, as a logged-in superuser. The target is
under 100 ms for each page; every page reads Redis by ranges, so the figures should not move
with the number of jobs (try ``--queued 1000000``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from django_convoy.testing.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "monsterTrucks"
TARGET_MS = 100.0
BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=100_000, help="queued jobs to add")
    parser.add_argument("--failed", type=int, default=10_000, help="failed jobs to make")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    options = parser.parse_args()

    server = RedisServer().start()
    try:
        os.environ["REDIS_URL"] = server.url  # benchmarks.settings refuses to load without it
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        sys.path.insert(0, str(ROOT))
        run(options)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def run(options: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    fill(options.queued, options.failed)
    print(
        f"filled {QUEUE} with {options.queued:,} queued and {options.failed:,} failed jobs "
        f"in {time.perf_counter() - started:.1f} s"
    )

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench"))
    base = f"/admin/django_convoy/queue/queue/{QUEUE}/"
    deep_page = max(1, options.queued // 50 - 10)
    pages = {
        "overview": "/admin/django_convoy/queue/",
        "statistics.json": "/admin/django_convoy/queue/statistics.json",
        "queue, queued tab": base,
        f"queue, queued tab, page {deep_page:,}": f"{base}?state=queued&page={deep_page}",
        "queue, failed tab": f"{base}?state=failed",
    }
    print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8}  target < {TARGET_MS:.0f} ms")
    for name, url in pages.items():
        median, p95 = time_page(client, url, options.requests)
        verdict = "ok" if p95 < TARGET_MS else "OVER"
        print(f"{name:<40} {median:>10.1f} {p95:>8.1f}  {verdict}")


def fill(queued: int, failed: int) -> None:
    """Make ``failed`` failed jobs the way workers do (claim, then fail), then queue the rest."""
    from django_convoy import get_queue

    queue = get_queue(QUEUE)
    error = {"type": "builtins.ValueError", "message": "no soap", "traceback": "Traceback: ..."}
    for start in range(0, failed, BATCH):
        stop = min(failed, start + BATCH)
        queue.add_jobs([(f"broken-{n}", {"truck": n}) for n in range(start, stop)])
        for run in queue.claim(stop - start, "bench-host.1.abc").runs:
            queue.fail(run, {**error, "attempt": run.attempt}, final=True)
    for start in range(0, queued, BATCH):
        stop = min(queued, start + BATCH)
        queue.add_jobs([(f"truck-{n}", {"truck": n, "wheels": 4}) for n in range(start, stop)])
    stats = queue.stats()
    assert (stats["queued"], stats["failed"]) == (queued, failed), stats


def time_page(client, url: str, requests: int) -> tuple[float, float]:
    """Return the median and 95th percentile of ``requests`` timed GETs, in ms."""
    for _ in range(3):  # warm up: templates, scripts, connections
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    return statistics.median(times), p95


if __name__ == "__main__":
    main()
