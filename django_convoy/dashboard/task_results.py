"""What the page of a Django task's result (``backends/``), linked from its job's page, needs.

A Django task's job carries its result id in its payload; the result outlives the job (it is
kept ``RESULT_TTL`` after the run), so the page reads it through the backend that enqueued it,
as ``get_result()`` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.utils import quote
from django.http import Http404
from django.urls import reverse

from ..decorators import registered_runners
from ..store import Job


def link(queue: str, job: Job) -> str:
    """The URL of the result page of a Django task's job, or "" for any other job."""
    payload = job.payload
    if job.task not in registered_runners() or not isinstance(payload, dict):
        return ""
    result_id, backend = payload.get("result"), payload.get("backend")
    if not isinstance(result_id, str) or not isinstance(backend, str):
        return ""
    url = reverse("admin:django_convoy_queue_task_result", args=[quote(queue), quote(result_id)])
    return f"{url}?{urlencode({'backend': backend})}"


def read(alias: str, result_id: str) -> Any:
    """The result ``result_id`` as the convoy backend ``alias`` reads it; 404 without one."""
    try:
        from ..backends.backend import ConvoyBackend
        from ..backends.framework import TaskResultDoesNotExist, task_backends
    except ImportError as exc:
        raise Http404(str(exc)) from None
    try:
        backend = task_backends[alias]
    except Exception:  # InvalidTaskBackend, whose module moved between Django and the backport
        raise Http404(f"No TASKS backend {alias!r}.") from None
    if not isinstance(backend, ConvoyBackend):
        raise Http404(f"TASKS[{alias!r}] is not a convoy backend.")
    try:
        return backend.get_result(result_id)
    except TaskResultDoesNotExist:
        raise Http404(
            f"No result {result_id!r}: it expired (RESULT_TTL) or never existed."
        ) from None
