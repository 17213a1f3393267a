"""convoy/metrics: the Prometheus exposition, its guard, and the counters the scripts keep."""

import signal
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.core.checks import run_checks
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from django_convoy import get_queue
from django_convoy.store.counters import Histogram, bounds_ms
from django_convoy.testing import drain
from tests.helpers import ThreadedWorker, manage, test_log, wait_until
from tests.jobs import tasks

OPEN = {"ENABLED": True}  # ALLOW: loopback, the test client's address


@pytest.fixture
def metrics_on(settings):
    settings.CONVOY = {**settings.CONVOY, "METRICS": OPEN}


def scrape(client, **extra) -> dict:
    """The samples of one scrape, by (name, frozen labels)."""
    response = client.get("/convoy/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_are_not_served_until_enabled(client):
    assert client.get("/convoy/metrics").status_code == 404


def test_a_request_from_outside_the_allowed_networks_gets_403(client, settings):
    settings.CONVOY = {**settings.CONVOY, "METRICS": {"ENABLED": True, "ALLOW": ["10.0.0.0/8"]}}
    assert client.get("/convoy/metrics", REMOTE_ADDR="192.168.1.7").status_code == 403
    assert client.get("/convoy/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_the_default_allows_loopback_only(client, metrics_on):
    assert client.get("/convoy/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.get("/convoy/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/convoy/metrics").status_code == 200  # 127.0.0.1


@pytest.mark.django_db
def test_a_permission_in_allow_needs_a_user_who_has_it(client, settings):
    settings.CONVOY = {
        **settings.CONVOY,
        "METRICS": {"ENABLED": True, "ALLOW": "django_convoy.view_queue"},
    }
    assert client.get("/convoy/metrics").status_code == 403  # anonymous, even from loopback
    user = User.objects.create_user("scraper", password="pw")
    client.force_login(user)
    assert client.get("/convoy/metrics").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_queue"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get("/convoy/metrics").status_code == 200


@override_settings()
def test_invalid_metrics_settings_are_reported_as_e025(settings):
    settings.CONVOY = {**settings.CONVOY, "METRICS": {"ENABLED": "yes", "ALLOW": ["not-a-net"]}}
    found = [error for error in run_checks() if error.id == "convoy.E025"]
    assert [error.msg for error in found] == [
        "CONVOY['METRICS']['ENABLED'] must be True or False, not 'yes'.",
        "CONVOY['METRICS']['ALLOW'] has 'not-a-net', which is not an IP network.",
    ]


def test_every_metric_of_the_contract_is_served_for_every_queue(client, metrics_on):
    samples = scrape(client)
    names = {name for name, _ in samples}
    for name in (
        "convoy_jobs",
        "convoy_queue_oldest_seconds",
        "convoy_jobs_processed_total",
        "convoy_jobs_failed_total",
        "convoy_jobs_retried_total",
        "convoy_jobs_recovered_total",
        "convoy_adds_total",
        "convoy_stale_writes_refused_total",
        "convoy_job_duration_seconds_bucket",
        "convoy_job_duration_seconds_count",
        "convoy_job_duration_seconds_sum",
        "convoy_job_wait_seconds_bucket",
        "convoy_workers",
    ):
        assert name in names, name
    for queue in ("monsterTrucks", "default", "fast", "retrying", "tiny", "crashy"):
        assert value(samples, "convoy_jobs", queue=queue, state="queued") == 0
        assert value(samples, "convoy_jobs_recovered_total", queue=queue, action="requeued") == 0


def test_scrape_agrees_with_stats_while_a_worker_drains(client, metrics_on):
    queue = get_queue("default")
    for i in range(150):
        tasks.record.enqueue(f"m{i}", 0.005)
    assert not tasks.record.enqueue("m0", 0.005).added
    with ThreadedWorker("default", concurrency=4):
        wait_until(lambda: queue.stats()["processed_total"] > 10)
        before = queue.stats()
        samples = scrape(client)
        after = queue.stats()
        assert before["queued"] >= value(samples, "convoy_jobs", queue="default", state="queued")
        assert value(samples, "convoy_jobs", queue="default", state="queued") >= after["queued"]
        processed = value(samples, "convoy_jobs_processed_total", queue="default")
        assert before["processed_total"] <= processed <= after["processed_total"]
        assert value(samples, "convoy_workers", queue="default") == 1
        assert value(samples, "convoy_workers", queue="fast") == 0
        assert value(samples, "convoy_queue_oldest_seconds", queue="default") >= 0
        wait_until(lambda: queue.stats()["processed_total"] == 150)
    samples = scrape(client)
    stats = queue.stats()
    for state in ("queued", "processing", "jammed", "scheduled", "failed"):
        assert value(samples, "convoy_jobs", queue="default", state=state) == stats[state] == 0
    assert value(samples, "convoy_jobs_processed_total", queue="default") == 150
    assert value(samples, "convoy_adds_total", queue="default", result="added") == 150
    assert value(samples, "convoy_adds_total", queue="default", result="duplicate") == 1
    assert value(samples, "convoy_job_duration_seconds_count", queue="default") == 150
    assert value(samples, "convoy_job_wait_seconds_count", queue="default") == 150
    assert value(samples, "convoy_job_duration_seconds_sum", queue="default") >= 150 * 0.005
    inf = value(samples, "convoy_job_wait_seconds_bucket", queue="default", le="+Inf")
    assert inf == 150
    assert value(samples, "convoy_queue_oldest_seconds", queue="default") == 0


def test_retries_failures_and_refused_writes_are_counted(metrics_on):
    queue = get_queue("retrying")  # MAX_ATTEMPTS 3
    tasks.flaky.enqueue("a", 5)  # fails all three attempts
    for _ in range(3):
        drain("retrying")
        time.sleep(0.2)  # the retries' backoff
    drain("retrying")
    counters = queue.store.counts()["counters"]
    assert (counters.retried, counters.failed) == (2, 1)
    assert counters.duration.count == 3  # every run that ended, retried or not
    assert counters.wait.count == 1  # the job's first run only

    tasks.flaky.enqueue("b", 0)
    run = queue.claim(1, "someone").runs[0]
    assert queue.ack([(run.id, "999")]) == [0]  # a stale token
    assert queue.fail(run.__class__(run.queue, run.id, run.body, 1, "998"), {}) == "stale"
    assert queue.store.counts()["counters"].stale_writes_refused == 2


def test_a_delayed_job_waits_from_its_due_time_not_from_its_add():
    queue = get_queue("default")
    queue.add_job("later", delay=0.3)
    time.sleep(0.4)
    drain("default")
    wait = queue.store.counts()["counters"].wait
    assert wait.count == 1 and wait.sum < 0.25, wait


def test_histogram_quantiles_interpolate_within_a_bucket():
    assert bounds_ms()[:3] == (5, 10, 25)
    histogram = Histogram(((0.005, 0), (0.01, 10), (0.025, 10)), 10, 0.08)
    assert histogram.quantile(0.5) == pytest.approx(0.0075)
    assert Histogram(((0.005, 0),), 0, 0).quantile(0.5) is None


def test_counters_match_the_jobs_run_after_a_worker_is_sigkilled_and_recovered(client, metrics_on):
    queue = get_queue("crashy")  # LEASE 1 s
    for i in range(6):
        tasks.crashy.enqueue(f"k{i}", 0.5)
    worker = manage("convoy_worker", "crashy", "--no-jam-guard", "--concurrency", "2")
    try:
        # Killed once two jobs are acked, not merely ended: a run whose job ended but whose ack
        # the kill stopped is recovered and runs again (at least once), and "done once" below
        # would not hold. The next two take 0.5 s: the kill finds them running.
        wait_until(lambda: queue.stats()["processed_total"] >= 2, timeout=30)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    counts = queue.stats()
    held = counts["processing"] + counts["jammed"]  # the runs the kill left
    assert held >= 1
    wait_until(lambda: queue.stats()["jammed"] == held, timeout=5)
    assert len(queue.jam_guard()) == held
    rerun = manage("convoy_worker", "crashy", "--burst")
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out

    samples = scrape(client)
    assert value(samples, "convoy_jobs_processed_total", queue="crashy") == 6
    assert value(samples, "convoy_jobs_recovered_total", queue="crashy", action="requeued") == held
    assert value(samples, "convoy_adds_total", queue="crashy", result="added") == 6
    # Each job's first run waited once; the runs that were killed never reported a duration.
    assert value(samples, "convoy_job_wait_seconds_count", queue="crashy") == 6
    assert value(samples, "convoy_job_duration_seconds_count", queue="crashy") == 6
    ends = [e.split()[1] for e in test_log() if e.startswith("end")]
    assert sorted(ends) == [f"crashy-k{i}" for i in range(6)]  # each job done once
    # A run the kill left (claimed, started or not) ran again as attempt 2; no other run did.
    again = [e for e in test_log() if e.startswith("start") and e.split()[3] != "1"]
    assert len(again) == held and all(e.split()[3] == "2" for e in again)


def test_the_oldest_queued_job_is_found_behind_a_higher_priority():
    queue = get_queue("default")
    queue.add_job("old-and-low", priority=-5)
    time.sleep(0.3)
    queue.add_jobs(["new-and-high", "newer-and-high"], priority=5)
    queue.add_job("new-and-plain")
    counts = queue.store.counts()
    assert counts["now_ms"] - counts["oldest_ms"] >= 300
    assert counts["oldest_ms"] == int(queue.get_job("old-and-low").enqueued_at.timestamp() * 1000)
