"""Helpers shared by the admin dashboard's tests: users with permissions, jobs in each state."""

from __future__ import annotations

import time

from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_convoy.queue import Queue

OVERVIEW = "/admin/django_convoy/queue/"


def user_with(*codenames: str, staff: bool = True, username: str = "alice") -> User:
    """Create a user holding these ``django_convoy`` permissions."""
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_convoy", codename__in=codenames)
    )
    return user


def queue_url(name: str, state: str = "") -> str:
    url = reverse("admin:django_convoy_queue_change", args=[name])
    return f"{url}?state={state}" if state else url


def job_url(queue: str, job_id: str) -> str:
    from django.contrib.admin.utils import quote

    return reverse("admin:django_convoy_queue_job", args=[quote(queue), quote(job_id)])


def action_url(queue: str, action: str, job_id: str | None = None) -> str:
    from django.contrib.admin.utils import quote

    if job_id is None:
        return reverse("admin:django_convoy_queue_action", args=[queue, action])
    return reverse("admin:django_convoy_queue_job_action", args=[queue, quote(job_id), action])


def fail(queue: Queue, job_id: str, payload: object = None, message: str = "no soap") -> None:
    """Put a job in the failed state the way a worker does: claim it, then fail it for good."""
    queue.add_job(job_id, payload)
    batch = queue.claim(1, "test-host.1.abc")
    (run,) = batch.runs
    assert run.id == job_id, "fail() needs a queue with nothing else queued"
    error = {
        "type": "builtins.ValueError",
        "message": message,
        "traceback": f"Traceback (most recent call last):\n  ...\nValueError: {message}",
        "at": int(time.time() * 1000),
        "attempt": run.attempt,
        "reason": "error",
        "worker": "test-host.1.abc",
    }
    assert queue.fail(run, error, final=True) == "failed"


def claim(queue: Queue, job_id: str, worker: str = "test-host.1.abc") -> None:
    """Put a job in processing, held by ``worker``."""
    queue.add_job(job_id)
    (run,) = queue.claim(1, worker).runs
    assert run.id == job_id


def jam(queue: Queue, job_id: str, seconds_ago: float = 5.0) -> None:
    """Put a job in the jammed state: claimed, with a lease that ended ``seconds_ago``."""
    claim(queue, job_id)
    deadline = int((time.time() - seconds_ago) * 1000)
    queue.client.zadd(queue.keys.processing, {job_id: deadline}, xx=True)


def beat(queue: Queue, worker_id: str, info: dict, every_ms: int = 3000) -> None:
    """Register a worker's heartbeat exactly as a worker's keeper does."""
    queue.store.fleet.heartbeat(worker_id, info, every_ms)
