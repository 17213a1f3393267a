"""Progress: a run says how far it got; coalesced, fenced, read back by get_job and the admin."""

import time

import pytest

from django_convoy import get_queue
from django_convoy.context import PROGRESS_INTERVAL_SECONDS, JobContext
from tests.admin_helpers import job_url, queue_url
from tests.helpers import wait_until

WORKER = "test-host.1.abc"


def running(job_id: str = "reindex") -> tuple:
    queue = get_queue("default")
    queue.add_job(job_id)
    (run,) = queue.claim(1, WORKER).runs
    return queue, run, JobContext(run.queue, run.id, run.attempt, run.token)


def test_get_job_returns_the_progress_a_run_reported():
    queue, run, job = running()
    job.set_progress(3, 10, "page 3")
    progress = queue.get_job("reindex").progress
    assert (progress.done, progress.total, progress.message) == (3, 10, "page 3")
    assert (progress.fraction, progress.percent, progress.rate) == (0.3, 30, None)
    time.sleep(PROGRESS_INTERVAL_SECONDS + 0.05)
    job.set_progress(7, 10, "page 7")
    progress = queue.get_job("reindex").progress
    assert progress.done == 7 and 4 < progress.rate < 4 / PROGRESS_INTERVAL_SECONDS
    assert progress.updated_at is not None


def test_progress_without_a_total_has_no_fraction():
    queue, _, job = running()
    job.set_progress(1234)
    progress = queue.get_job("reindex").progress
    assert (progress.done, progress.total, progress.fraction, progress.message) == (
        1234,
        None,
        None,
        "",
    )


def test_reports_are_coalesced_and_the_latest_one_is_written(monkeypatch):
    queue, _, job = running()
    writes = []
    real = type(queue).set_progress
    monkeypatch.setattr(
        type(queue), "set_progress", lambda self, *a: writes.append(a[1]) or real(self, *a)
    )
    for done in range(1, 1001):
        job.set_progress(done, 1000)
    assert writes == [1]  # the first at once; the rest wait for the interval
    wait_until(lambda: queue.get_job("reindex").progress.done == 1000, timeout=2)
    assert writes == [1, 1000]


def test_a_run_that_lost_its_job_writes_no_progress_and_reads_cancelled():
    queue, run, job = running()
    job.set_progress(1, 10)
    queue.cancel("reindex")
    time.sleep(PROGRESS_INTERVAL_SECONDS + 0.05)
    job.set_progress(9, 10)
    assert job.cancelled
    assert queue.set_progress(run, 5, 10, "late") is False
    queue.add_job("reindex")
    assert queue.get_job("reindex").progress is None  # an earlier run's is not the new run's
    (again,) = queue.claim(1, WORKER).runs
    assert again.id == "reindex" and queue.get_job("reindex").progress is None


def test_set_progress_needs_numbers():
    _, _, job = running()
    with pytest.raises(TypeError, match="done must be a number"):
        job.set_progress("half")
    with pytest.raises(TypeError, match="total must be a number"):
        job.set_progress(1, True)


@pytest.mark.django_db
def test_the_admin_shows_progress_on_the_job_page_and_the_processing_tab(admin_client):
    _, _, job = running()
    job.set_progress(25, 100, "reindexing <b>trucks</b>")
    page = admin_client.get(job_url("default", "reindex")).content.decode()
    assert '<progress value="25.0" max="100.0">25%</progress>' in page
    assert "reindexing &lt;b&gt;trucks&lt;/b&gt;" in page
    tab = admin_client.get(queue_url("default", "processing")).content.decode()
    assert '<progress value="25.0" max="100.0">25%</progress>' in tab
