"""The dashboard in a real browser: Playwright driving Debian's headless chromium.

``make browser-deps`` installs both (chromium with apt-get, playwright through the ``dev``
extra); Playwright's own browser downloads are never used. Where either is missing the test is
skipped saying so, except in CI, where it fails: CI must run it.

Set CONVOY_SCREENSHOTS to a directory (``make screenshots`` uses docs/) to keep the screenshots
of the overview and of a queue page that the test takes.
"""

import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from django_convoy import get_queue
from tests.admin_helpers import OVERVIEW
from tests.helpers import ThreadedWorker
from tests.jobs import tasks

CHROMIUM = os.environ.get("CONVOY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make browser-deps)"
    if not shutil.which(CHROMIUM):
        return f"no chromium at {CHROMIUM} (make browser-deps: apt-get install chromium)"
    return ""


@contextmanager
def chromium_page() -> Iterator:
    """A page of a fresh headless chromium; skips the test (fails it in CI) without one.

    Playwright's sync API runs an event loop on this thread, so Django's database is off limits
    inside the block (SynchronousOnlyOperation): do database work before or after it.
    """
    missing = _missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"The browser test must run in CI, but {missing}.")
    if missing:
        pytest.skip(f"Browser test skipped: {missing}.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    return Path(os.environ.get("CONVOY_SCREENSHOTS") or tmp_path)


def seed_an_hour_of_throughput(names: list[str]) -> None:
    """Give the charts an hour of history, as a queue that has been busy would have."""
    for name in names:
        queue = get_queue(name)
        minute = int(time.time() // 60)
        history = {}
        for age in range(1, 60):
            history[f"processed:{minute - age}"] = int(50 + 25 * math.sin(age / 6) + age * 37 % 11)
            if age % 9 == 4:
                history[f"failed:{minute - age}"] = age % 7 + 2
        queue.client.hset(queue.keys.throughput, mapping=history)


def count(page, queue: str, field: str) -> int:
    text = page.locator(f'[data-stat="{queue}:{field}"]').first.text_content()
    return int(text.replace(",", ""))


def stat_at_least(queue: str, field: str, value: int) -> str:
    """A browser-side condition: the live count of the queue's ``field`` is at least ``value``."""
    selector = f'[data-stat="{queue}:{field}"]'
    return f"Number(document.querySelector('{selector}').textContent) >= {value}"


def test_dashboard_live_counts_a_failed_job_and_its_requeue(live_server, screenshots):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    seed_an_hour_of_throughput(["monsterTrucks", "fast"])
    get_queue("monsterTrucks").add_jobs(
        [(f"truck-{n}", {"truck": n, "wheels": 4}) for n in range(1, 1235)]
    )
    get_queue("monsterTrucks").pause()
    for n in range(16):
        tasks.slow.enqueue(f"wash-{n}", 0.3)  # queue "fast": heartbeats every 0.33 s
    tasks.boom.enqueue("<script>alert('payload')</script>")

    with chromium_page() as page:
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{live_server.url}/admin/login/?next={OVERVIEW}")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"**{OVERVIEW}")
        assert count(page, "fast", "queued") == 16
        assert count(page, "default", "queued") == 1
        assert page.locator(".convoy-paused").is_visible()
        page.evaluate("window.convoyNotReloaded = true")

        with ThreadedWorker("fast", concurrency=1), ThreadedWorker("default"):
            # The counts move on their own: the JSON feed is polled, the page is not reloaded.
            page.wait_for_function(stat_at_least("fast", "processed_total", 3))
            assert count(page, "fast", "queued") < 16
            # The worker is online and says what it runs.
            page.wait_for_function(
                "[...document.querySelectorAll('.convoy-worker.online [data-field=current]')]"
                ".some((cell) => cell.textContent.startsWith('1 running: fast: slow-wash-'))"
            )
            page.screenshot(path=str(screenshots / "admin-overview.png"), full_page=True)
            page.wait_for_function(stat_at_least("fast", "processed_total", 16))
            page.wait_for_function(stat_at_least("default", "failed", 1))
        assert page.evaluate("window.convoyNotReloaded") is True
        assert count(page, "fast", "queued") == 0
        page.click("[data-live-toggle]")  # the live refresh can be paused, and resumed
        assert page.locator("[data-live-status]").text_content() == "Live updates paused."
        page.click("[data-live-toggle]")
        page.wait_for_function(
            "document.querySelector('[data-live-status]').textContent.startsWith('Live: updated')"
        )

        page.goto(f"{live_server.url}{OVERVIEW}queue/monsterTrucks/?page=2")
        page.screenshot(path=str(screenshots / "admin-queue.png"))

        page.goto(f"{live_server.url}{OVERVIEW}")
        page.click('a[data-stat="default:failed"]')
        page.click("#convoy-jobs tbody a")
        assert page.locator("#convoy-job-state").text_content() == "failed"
        payload = page.locator("#convoy-payload").text_content()
        assert "<script>alert('payload')</script>" in payload  # shown as text, not run
        assert "ValueError" in page.locator("#convoy-traceback").text_content()
        page.click("input[value=Requeue]")
        success = page.locator(".messagelist .success").text_content()
        assert "Requeued failed job" in success
        assert page.locator("#convoy-job-state").text_content() == "queued"
        assert dialogs == []

    entry = LogEntry.objects.get()
    assert entry.user.username == "admin" and "Requeued failed job" in entry.change_message
