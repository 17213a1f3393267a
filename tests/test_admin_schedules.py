"""The admin's Schedules page: each schedule's timing, ticks and last run; run now, pause and
resume, each a POST of staff with ``change_queue``, recorded in the admin log."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import override_settings

from django_convoy import get_queue
from django_convoy.store.schedules import ScheduleStore
from tests.admin_helpers import OVERVIEW, job_url, user_with

pytestmark = pytest.mark.django_db

PAGE = OVERVIEW + "schedules/"
TASK = "tests.jobs.tasks.record"
SCHEDULE = {
    "nightly": {"task": TASK, "cron": "0 3 * * *", "timezone": "Europe/Paris", "args": ["n"]},
    "each": {"task": TASK, "every": 60, "args": ["e"], "enabled": False},
}


@pytest.fixture(autouse=True)
def schedules():
    with override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": SCHEDULE}):
        yield


def action(name: str, what: str) -> str:
    return f"{PAGE}{name}/do/{what}/"


def test_the_page_lists_each_schedule_with_its_timing_and_status(admin_client):
    page = admin_client.get(PAGE).content.decode()
    assert "cron 0 3 * * * (Europe/Paris)" in page and "every 60 s" in page
    assert '<tr data-schedule="nightly">' in page and "disabled" in page
    assert "Run now" in page and "Pause" in page
    assert PAGE in admin_client.get(OVERVIEW).content.decode()  # linked from the overview


def test_run_now_adds_a_run_links_it_and_logs_who_did_it(admin_client, admin_user):
    response = admin_client.post(action("nightly", "run-now"))
    assert response["Location"] == PAGE
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    job_id = message.split("added job ")[1].split(" ")[0]
    assert message == f"Ran schedule nightly now: added job {job_id} to queue default."
    assert get_queue("default").get_job(job_id).state == "queued"
    (entry,) = LogEntry.objects.all()
    assert entry.user == admin_user and entry.change_message == message
    page = admin_client.get(PAGE).content.decode()
    assert job_url("default", job_id) in page
    assert "(queued)" in page


def test_run_now_while_the_last_run_is_live_changes_nothing_and_says_why(admin_client):
    admin_client.post(action("nightly", "run-now"))
    response = admin_client.post(action("nightly", "run-now"))
    (message,) = [str(m) for m in get_messages(response.wsgi_request)][-1:]
    assert "was not run: its last run nightly@now-" in message
    assert get_queue("default").stats()["queued"] == 1


def test_pause_is_kept_in_redis_for_every_scheduler_and_resume_lifts_it(admin_client):
    store = ScheduleStore(get_queue("default").store)
    admin_client.post(action("nightly", "pause"))
    assert store.states(["nightly"])["nightly"].paused
    assert "Resume" in admin_client.get(PAGE).content.decode()
    admin_client.post(action("nightly", "resume"))
    assert not store.states(["nightly"])["nightly"].paused
    assert LogEntry.objects.count() == 2


def test_view_only_staff_see_the_page_but_cannot_act(client):
    client.force_login(user_with("view_queue"))
    assert "Run now" not in client.get(PAGE).content.decode()
    assert client.post(action("nightly", "run-now")).status_code == 403
    assert get_queue("default").stats()["queued"] == 0


def test_actions_accept_only_post_and_only_known_schedules(admin_client):
    assert admin_client.get(action("nightly", "run-now")).status_code == 405
    assert admin_client.post(action("nope", "run-now")).status_code == 404
