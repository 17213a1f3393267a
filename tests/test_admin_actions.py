"""The dashboard's actions: each a POST, destructive ones confirmed, all in the admin log."""

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages

from django_convoy import get_queue
from tests.admin_helpers import OVERVIEW, action_url, claim, fail, jam, job_url, queue_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def default():
    return get_queue("default")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def only_log_entry(user) -> LogEntry:
    (entry,) = LogEntry.objects.all()
    assert entry.user == user and entry.action_flag == CHANGE
    assert entry.object_id == "default" and entry.object_repr == "default"
    assert entry.content_type.app_label == "django_convoy"
    return entry


def test_requeue_a_failed_job(admin_client, admin_user, default):
    fail(default, "broken")
    response = admin_client.post(action_url("default", "requeue", "broken"))
    assert response["Location"] == job_url("default", "broken")
    job = default.get_job("broken")
    assert (job.state, job.attempts, job.last_error) == ("queued", 0, None)
    message = "Requeued failed job 'broken' of queue default as a fresh run."
    assert messages_of(response) == [message]
    assert only_log_entry(admin_user).change_message == message


def test_the_log_entry_links_to_the_queue_page(admin_client, admin_user, default):
    fail(default, "broken")
    admin_client.post(action_url("default", "requeue", "broken"))
    assert only_log_entry(admin_user).get_admin_url() == queue_url("default")
    assert admin_client.get(queue_url("default")).status_code == 200


def test_requeue_all_failed_asks_first_then_requeues_them_all(admin_client, admin_user, default):
    for n in range(3):
        fail(default, f"broken-{n}")
    url = action_url("default", "requeue-failed")
    html = admin_client.get(url).content.decode()
    assert "Queue all 3 failed jobs of queue default again" in html
    assert default.stats()["failed"] == 3  # asking changed nothing
    response = admin_client.post(url)
    assert response["Location"] == queue_url("default")
    assert default.stats()["failed"] == 0 and default.stats()["queued"] == 3
    assert only_log_entry(admin_user).change_message == "Requeued 3 failed jobs of queue default."


def test_delete_asks_first_then_deletes_and_frees_the_id(admin_client, admin_user, default):
    default.add_job("unwanted", {"x": 1})
    url = action_url("default", "delete", "unwanted")
    html = admin_client.get(url).content.decode()
    assert "Delete the queued job unwanted of queue default?" in html
    assert 'value="Yes, delete"' in html
    assert default.get_job("unwanted") is not None
    response = admin_client.post(url)
    assert response["Location"] == queue_url("default", "queued")
    assert default.get_job("unwanted") is None
    assert default.add_job("unwanted").added  # the id is free again
    assert "Deleted queued job 'unwanted'" in only_log_entry(admin_user).change_message


def test_release_a_jammed_job(admin_client, admin_user, default):
    jam(default, "stuck")
    url = action_url("default", "release", "stuck")
    assert "Drop the jammed job stuck" in admin_client.get(url).content.decode()
    response = admin_client.post(url)
    assert response["Location"] == queue_url("default", "jammed")
    assert default.get_job("stuck") is None
    assert default.stats()["jammed"] == 0
    assert "Released jammed job 'stuck'" in only_log_entry(admin_user).change_message


def test_run_the_jam_guard_now(admin_client, admin_user, default):
    jam(default, "stuck-1")
    jam(default, "stuck-2")
    response = admin_client.post(action_url("default", "jam-guard"))
    assert default.get_job("stuck-1").state == "queued"
    assert default.get_job("stuck-2").state == "queued"
    message = "Ran the jam guard on queue default: recovered 2 jammed jobs (2 requeued)."
    assert messages_of(response) == [message]
    assert only_log_entry(admin_user).change_message == message


def test_purge_asks_first_then_removes_waiting_jobs_only(admin_client, admin_user, default):
    default.add_jobs(["q1", "q2"])
    default.add_job("s1", delay=60)
    fail(get_queue("retrying"), "kept-failed")
    claim(get_queue("retrying"), "kept-running")
    url = action_url("default", "purge")
    html = admin_client.get(url).content.decode()
    assert "Remove every waiting job of queue default (2 queued, 1 scheduled)" in html
    admin_client.post(url)
    assert default.stats()["queued"] == 0 and default.stats()["scheduled"] == 0
    assert get_queue("retrying").stats()["failed"] == 1
    assert get_queue("retrying").stats()["processing"] == 1
    assert "removed 3 waiting jobs" in only_log_entry(admin_user).change_message


def test_pause_and_resume(admin_client, admin_user, default):
    default.add_job("waiting")
    admin_client.post(action_url("default", "pause"))
    assert default.is_paused()
    batch = default.claim(5, "w")  # what a worker's claim sees
    assert batch.paused and batch.runs == []
    assert default.add_job("still-accepted").added
    admin_client.post(action_url("default", "resume"))
    assert not default.is_paused()
    assert [job.id for job in default.claim(5, "w").runs] == ["waiting", "still-accepted"]
    assert [entry.change_message for entry in LogEntry.objects.order_by("id")] == [
        "Paused queue default: workers stop claiming from it; adds still queue.",
        "Resumed queue default: workers claim from it again.",
    ]


def test_a_queue_action_returns_to_the_page_it_came_from(admin_client, default):
    response = admin_client.post(action_url("default", "pause"), {"next": OVERVIEW})
    assert response["Location"] == OVERVIEW


def test_a_queue_action_ignores_a_next_url_on_another_site(admin_client, default):
    response = admin_client.post(action_url("default", "pause"), {"next": "https://evil.example/"})
    assert response["Location"] == queue_url("default")


def test_requeue_of_a_job_that_moved_says_so_and_changes_nothing(admin_client, default):
    fail(default, "broken")
    default.requeue_failed(["broken"])  # someone else was quicker
    (run,) = default.claim(1, "w").runs  # and a worker has it now
    response = admin_client.post(action_url("default", "requeue", "broken"))
    assert response["Location"] == job_url("default", "broken")
    assert messages_of(response) == [
        "Job 'broken' of queue 'default' is not failed: it is processing. Nothing was changed."
    ]
    assert default.get_job("broken").state == "processing"
    assert default.ack([(run.id, run.token)]) == [1]  # the worker's run is untouched
    assert not LogEntry.objects.exists()


def test_delete_of_a_job_that_finished_meanwhile_says_so(admin_client, default):
    response = admin_client.post(action_url("default", "delete", "finished"))
    assert messages_of(response) == [
        "Job 'finished' of queue 'default' is not queued or scheduled or failed: no job has "
        "that id. Nothing was changed."
    ]
    assert not LogEntry.objects.exists()


def test_release_of_a_job_that_is_no_longer_jammed_changes_nothing(admin_client, default):
    claim(default, "alive")  # its lease is live: not jammed
    response = admin_client.post(action_url("default", "release", "alive"))
    assert "is not jammed: it is processing. Nothing was changed." in messages_of(response)[0]
    assert default.get_job("alive").state == "processing"
    assert not LogEntry.objects.exists()


def test_confirming_an_action_on_a_job_that_moved_goes_back_to_the_job(admin_client, default):
    claim(default, "busy")
    response = admin_client.get(action_url("default", "delete", "busy"))
    assert response["Location"] == job_url("default", "busy")
    assert "is not queued or scheduled or failed: it is processing" in messages_of(response)[0]


def test_job_page_offers_the_actions_of_its_state(admin_client, default):
    fail(default, "broken")
    jam(default, "stuck")
    failed = admin_client.get(job_url("default", "broken")).content.decode()
    jammed = admin_client.get(job_url("default", "stuck")).content.decode()
    assert re.findall(r"/do/([a-z-]+)/", failed) == ["requeue", "delete"]
    assert re.findall(r"/do/([a-z-]+)/", jammed) == ["release", "cancel"]


def test_unknown_actions_are_404(admin_client, default):
    assert admin_client.post(action_url("default", "explode")).status_code == 404
    assert admin_client.post(action_url("default", "explode", "x")).status_code == 404
    assert admin_client.post(action_url("nope", "pause")).status_code == 404


def test_cancel_a_processing_job_asks_first_and_records_who(admin_client, admin_user, default):
    claim(default, "busy")
    page = admin_client.get(job_url("default", "busy"))
    assert action_url("default", "cancel", "busy").encode() in page.content
    question = admin_client.get(action_url("default", "cancel", "busy"))
    assert b"Cancel the processing job busy of queue default?" in question.content
    response = admin_client.post(action_url("default", "cancel", "busy"))
    assert response["Location"] == job_url("default", "busy")
    error = default.get_job("busy").last_error
    assert (error["reason"], error["cancelled_by"]) == ("cancelled", admin_user.get_username())
    message = (
        "Cancelled processing job 'busy' of queue default: its run was stopped (its worker "
        "lets go of it within a lease renewal) and the job is kept as cancelled."
    )
    assert messages_of(response) == [message]
    assert only_log_entry(admin_user).change_message == message


def test_cancel_a_queued_job_frees_its_id(admin_client, default):
    default.add_job("waiting")
    response = admin_client.post(action_url("default", "cancel", "waiting"))
    assert response["Location"] == queue_url("default", "queued")
    assert default.get_job("waiting") is None


def test_cancel_of_a_job_that_moved_meanwhile_changes_nothing(admin_client, default):
    fail(default, "broken")
    response = admin_client.post(action_url("default", "cancel", "broken"))
    assert response["Location"] == job_url("default", "broken")
    assert "is not queued, scheduled, processing or jammed" in messages_of(response)[0]
    assert default.get_job("broken").last_error["type"] == "builtins.ValueError"
