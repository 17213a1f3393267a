"""Who may see the dashboard and who may act: view_queue to look, change_queue to act."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from django_convoy import get_queue
from tests.admin_helpers import OVERVIEW, action_url, fail, job_url, queue_url, user_with

pytestmark = pytest.mark.django_db

PAGES = {
    "overview": OVERVIEW,
    "statistics": f"{OVERVIEW}statistics.json",
    "find": f"{OVERVIEW}find/?id=broken",
    "queue": queue_url("default"),
    "job": job_url("default", "broken"),
}
ACTIONS = {
    "pause": action_url("default", "pause"),
    "resume": action_url("default", "resume"),
    "jam-guard": action_url("default", "jam-guard"),
    "requeue-failed": action_url("default", "requeue-failed"),
    "purge": action_url("default", "purge"),
    "requeue": action_url("default", "requeue", "broken"),
    "delete": action_url("default", "delete", "broken"),
    "release": action_url("default", "release", "broken"),
}


@pytest.fixture(autouse=True)
def a_failed_job():
    fail(get_queue("default"), "broken")


def test_the_model_has_exactly_view_and_change_permissions():
    codenames = Permission.objects.filter(content_type__app_label="django_convoy")
    assert sorted(codenames.values_list("codename", flat=True)) == ["change_queue", "view_queue"]


@pytest.mark.parametrize("url", [*PAGES.values(), *ACTIONS.values()], ids=[*PAGES, *ACTIONS])
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.post(url) if url in ACTIONS.values() else client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("url", PAGES.values(), ids=PAGES)
def test_staff_without_view_queue_get_403(client, url):
    client.force_login(user_with())
    assert client.get(url).status_code == 403


def test_users_who_are_not_staff_go_to_the_login_page_as_everywhere_in_the_admin(client):
    client.force_login(user_with("view_queue", "change_queue", staff=False))
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", PAGES.values(), ids=PAGES)
def test_staff_with_view_queue_see_every_page(client, url):
    client.force_login(user_with("view_queue"))
    assert client.get(url).status_code in (200, 302)  # find with one match redirects to the job


def test_view_only_staff_see_no_action_buttons(client):
    client.force_login(user_with("view_queue"))
    for url in (OVERVIEW, queue_url("default"), job_url("default", "broken")):
        html = client.get(url).content.decode()
        assert "/do/" not in html, url


@pytest.mark.parametrize("url", ACTIONS.values(), ids=ACTIONS)
def test_staff_with_only_view_queue_cannot_act(client, url):
    client.force_login(user_with("view_queue"))
    assert client.post(url).status_code == 403
    assert client.get(url).status_code == 403  # not even the confirmation page
    assert get_queue("default").get_job("broken").state == "failed"
    assert not get_queue("default").is_paused()


def test_staff_with_change_queue_can_act(client):
    client.force_login(user_with("view_queue", "change_queue"))
    response = client.post(ACTIONS["requeue"])
    assert response.status_code == 302
    assert get_queue("default").get_job("broken").state == "queued"


def test_superusers_can_see_and_act(admin_client):
    assert admin_client.get(OVERVIEW).status_code == 200
    assert admin_client.post(ACTIONS["pause"]).status_code == 302
    assert get_queue("default").is_paused()


def test_actions_refuse_a_post_without_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(ACTIONS["pause"]).status_code == 403
    assert not get_queue("default").is_paused()


def test_actions_that_need_no_confirmation_accept_only_post(admin_client):
    for name in ("pause", "resume", "jam-guard", "requeue"):
        assert admin_client.get(ACTIONS[name]).status_code == 405, name
    assert not get_queue("default").is_paused()
