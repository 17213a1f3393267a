"""The dashboard's pages, its JSON feed and its actions; ``django_convoy/admin.py`` mounts them.

Every view runs inside ``admin_site.admin_view`` (staff only; others are sent to the login page)
and then checks the ``Queue`` model's permissions: ``view_queue`` to look, ``change_queue`` to
act. Queue names and job ids travel in URLs through the admin's ``quote()``, as primary keys do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from ..conf import get_config
from ..exceptions import InvalidJob, JobNotFound, UnknownQueue
from ..ids import normalise_id
from ..models import Queue as QueueModel
from ..queue import ConvoyQueue, get_queue
from ..store import Job, from_ms
from ..store.records import STATES
from . import display, task_results
from .actions import JOB_ACTIONS, QUEUE_ACTIONS, JobAction, QueueAction, job_actions_for
from .browse import list_jobs
from .flow import flow_context
from .statistics import get_statistics, paused_queues

LIVE_REFRESH_SECONDS = 3
TAB_ORDER = ("queued", "processing", "jammed", "scheduled", "failed")


def queue_url(name: str, state: str = "", page: int = 1) -> str:
    """Return the URL of a queue's page, on the tab of ``state``."""
    url = reverse("admin:django_convoy_queue_change", args=[quote(name)])
    query = {
        key: value for key, value in (("state", state), ("page", page)) if value not in ("", 1)
    }
    return f"{url}?{urlencode(query)}" if query else url


def job_url(name: str, job_id: str) -> str:
    """Return the URL of a job's page."""
    return reverse("admin:django_convoy_queue_job", args=[quote(name), quote(job_id)])


# -- pages ----------------------------------------------------------------------------------


def overview(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """Every queue's counts and last hour, and the workers: the dashboard's front page."""
    _require(request, model_admin, "view")
    statistics = get_statistics()
    queues = [
        {"stats": queue, "chart": display.chart(queue), "url": queue_url(queue.name)}
        for queue in statistics.queues
    ]
    context = {
        "title": "Convoy queues",
        "queues": queues,
        "workers": [display.worker_row(worker) for worker in statistics.workers],
        "paused_queues": statistics.paused_queues,
        "chart_size": (display.CHART_WIDTH, display.CHART_HEIGHT),
        "live_counts": True,
    }
    return _render(request, model_admin, "overview.html", context)


def statistics_json(request: HttpRequest, model_admin: ModelAdmin) -> JsonResponse:
    """The overview's data as JSON, for the pages' live refresh and for monitoring."""
    _require(request, model_admin, "view")
    statistics = get_statistics()
    data = statistics.as_dict()
    for queue_data, queue in zip(data["queues"], statistics.queues, strict=True):
        queue_data["chart"] = display.chart(queue)
        queue_data["wait_p50_text"] = display.duration(queue.wait_p50) or "—"
        queue_data["wait_p95_text"] = display.duration(queue.wait_p95) or "—"
    for worker_data, worker in zip(data["workers"], statistics.workers, strict=True):
        worker_data["display"] = display.worker_row(worker)
    data["paused_queues"] = statistics.paused_queues
    return JsonResponse(data)


def queue_page(request: HttpRequest, model_admin: ModelAdmin, name: str) -> HttpResponse:
    """One queue: a tab per state, each paginated from Redis."""
    _require(request, model_admin, "view")
    queue = _queue(name)
    state = request.GET.get("state", "queued")
    if state not in STATES:
        raise Http404(f"No state {state!r}; states: {', '.join(STATES)}.")
    page = list_jobs(queue, state, _page_number(request))
    counts = queue.stats()
    groups_page = _page_number(request, "groups")
    context = {
        "flow": flow_context(queue, groups_page, counts["groups"] > 0),
        "title": f"Queue {queue.name}",
        "queue": queue,
        "state": state,
        "page": page,
        "page_links": _page_links(queue.name, state, page.nearby_pages()),
        "tabs": [
            {"state": tab, "count": counts[tab], "url": queue_url(queue.name, tab)}
            for tab in TAB_ORDER
        ],
        "rows": [
            {"job": row, "url": job_url(queue.name, row.id), "progress": page.progress.get(row.id)}
            for row in page.rows
        ],
        "queue_actions": _queue_buttons(queue.name),
        "paused_queues": paused_queues(),
        "live_counts": True,
    }
    return _render(request, model_admin, "queue.html", context)


def job_page(request: HttpRequest, model_admin: ModelAdmin, name: str, job_id: str) -> HttpResponse:
    """One job: its state, payload, attempts, times, worker and last error."""
    _require(request, model_admin, "view")
    queue = _queue(name)
    job_id = unquote(job_id)
    job = _get_job(queue, job_id)
    context: dict[str, Any] = {
        "title": f"Job {job_id}",
        "queue": queue,
        "queue_url": queue_url(queue.name),
        "job_id": job_id,
        "job": job,
        "paused_queues": paused_queues(),
    }
    if job is None:
        response = _render(request, model_admin, "job.html", context)
        response.status_code = 404
        return response
    error = job.last_error or {}
    result = job.result
    context.update(
        payload=display.pretty_json(job.payload),
        error=error,
        error_at=from_ms(error["at"]) if isinstance(error.get("at"), int | float) else None,
        error_ran_for=error["ran_ms"] / 1000 if isinstance(error.get("ran_ms"), int) else None,
        result=result,
        result_value=display.pretty_json(result.value) if result and result.kept else "",
        task_result_url=task_results.link(queue.name, job),
        state_url=queue_url(queue.name, job.state) if job.state in STATES else "",
        actions=[
            {"action": action, "url": _job_action_url(queue.name, job_id, action)}
            for action in job_actions_for(job.state)
        ],
    )
    return _render(request, model_admin, "job.html", context)


def task_result_page(
    request: HttpRequest, model_admin: ModelAdmin, name: str, result_id: str
) -> HttpResponse:
    """A Django task's result: its status, return value, errors, attempts and workers."""
    _require(request, model_admin, "view")
    queue = _queue(name)
    result_id = unquote(result_id)
    result = task_results.read(request.GET.get("backend", "default"), result_id)
    status = str(getattr(result.status, "value", result.status))
    value = result.return_value if status == "SUCCESSFUL" else None
    context = {
        "title": f"Result {result_id}",
        "queue": queue,
        "queue_url": queue_url(queue.name),
        "result_id": result_id,
        "result": result,
        "status": status,
        "return_value": display.pretty_json(value) if value else "",
        "paused_queues": paused_queues(),
    }
    return _render(request, model_admin, "task_result.html", context)


def find_job(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """Find who holds a job id: in which queues, in which state; one match opens the job."""
    _require(request, model_admin, "view")
    raw_id = request.GET.get("id", "")
    found, error = [], ""
    if raw_id:
        try:
            job_id = normalise_id(raw_id)
        except InvalidJob as exc:
            error = str(exc)
        else:
            for name in get_config().queues:
                job = get_queue(name).get_job(job_id)
                if job is not None:
                    found.append({"job": job, "url": job_url(name, job_id)})
            if len(found) == 1:
                return HttpResponseRedirect(found[0]["url"])
    context = {
        "title": "Find a job",
        "find_id": raw_id,
        "found": found,
        "error": error,
        "paused_queues": paused_queues(),
    }
    return _render(request, model_admin, "find.html", context)


# -- actions --------------------------------------------------------------------------------


def queue_action(
    request: HttpRequest, model_admin: ModelAdmin, name: str, action: str
) -> HttpResponse:
    """Act on a queue: POST acts, GET asks to confirm a destructive action."""
    _require(request, model_admin, "change")
    queue = _queue(name)
    chosen = QUEUE_ACTIONS.get(action)
    if chosen is None:
        raise Http404(f"No queue action {action!r}.")
    if request.method != "POST":
        if not chosen.question or request.method != "GET":
            return HttpResponseNotAllowed(["POST"])
        facts = {"name": queue.name, **queue.stats()}
        return _confirm(request, model_admin, queue, chosen, chosen.question.format(**facts))
    done = chosen.run(queue)
    _record(request, model_admin, queue, done.message)
    return HttpResponseRedirect(_next_url(request) or queue_url(queue.name, done.state))


def job_action(
    request: HttpRequest, model_admin: ModelAdmin, name: str, job_id: str, action: str
) -> HttpResponse:
    """Act on one job: POST acts, GET asks to confirm a destructive action."""
    _require(request, model_admin, "change")
    queue = _queue(name)
    job_id = unquote(job_id)
    chosen = JOB_ACTIONS.get(action)
    if chosen is None:
        raise Http404(f"No job action {action!r}.")
    if request.method != "POST":
        if not chosen.question or request.method != "GET":
            return HttpResponseNotAllowed(["POST"])
        job = _get_job(queue, job_id)
        if job is None or job.state not in chosen.states:
            messages.error(request, _moved(queue, job_id, job and job.state, chosen))
            return HttpResponseRedirect(job_url(queue.name, job_id))
        facts = {"name": queue.name, "id": job_id, "state": job.state}
        return _confirm(
            request, model_admin, queue, chosen, chosen.question.format(**facts), job_id
        )
    try:
        done = chosen.run(queue, job_id, request.user.get_username())
    except JobNotFound as exc:
        messages.error(request, f"{exc} Nothing was changed.")
        return HttpResponseRedirect(job_url(queue.name, job_id))
    _record(request, model_admin, queue, done.message)
    if done.state:
        return HttpResponseRedirect(queue_url(queue.name, done.state))
    return HttpResponseRedirect(job_url(queue.name, job_id))


# -- helpers --------------------------------------------------------------------------------


def _require(request: HttpRequest, model_admin: ModelAdmin, permission: str) -> None:
    allowed = (
        model_admin.has_change_permission(request)
        if permission == "change"
        else model_admin.has_view_permission(request)
    )
    if not allowed:
        raise PermissionDenied


def _queue(quoted_name: str) -> ConvoyQueue:
    try:
        return get_queue(unquote(quoted_name))
    except UnknownQueue as exc:
        raise Http404(str(exc)) from None


def _get_job(queue: ConvoyQueue, job_id: str) -> Job | None:
    try:
        return queue.get_job(job_id)
    except InvalidJob as exc:
        raise Http404(str(exc)) from None


def _page_number(request: HttpRequest, name: str = "page") -> int:
    try:
        return max(1, int(request.GET.get(name, 1)))
    except ValueError:
        return 1


def _page_links(name: str, state: str, numbers: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "number": number,
            "url": queue_url(name, state, number),
            "gap": bool(i) and number != numbers[i - 1] + 1,
        }
        for i, number in enumerate(numbers)
    ]


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe else ""


def _moved(queue: ConvoyQueue, job_id: str, state: str | None, action: JobAction) -> str:
    now = f"it is {state}" if state else "no job has that id"
    return (
        f"Job {job_id!r} of queue {queue.name!r} is not {' or '.join(action.states)}: {now}. "
        "Nothing was changed."
    )


def _record(
    request: HttpRequest, model_admin: ModelAdmin, queue: ConvoyQueue, message: str
) -> None:
    """Tell the user what happened and keep it in the admin log, with who did it."""
    model_admin.log_change(request, QueueModel(name=queue.name), message)
    messages.success(request, message)


def _queue_buttons(name: str) -> list[dict[str, Any]]:
    return [
        {
            "action": action,
            "url": reverse("admin:django_convoy_queue_action", args=[quote(name), action.name]),
        }
        for action in QUEUE_ACTIONS.values()
    ]


def _job_action_url(name: str, job_id: str, action: JobAction) -> str:
    return reverse(
        "admin:django_convoy_queue_job_action", args=[quote(name), quote(job_id), action.name]
    )


def _confirm(
    request: HttpRequest,
    model_admin: ModelAdmin,
    queue: ConvoyQueue,
    action: QueueAction | JobAction,
    question: str,
    job_id: str | None = None,
) -> HttpResponse:
    context = {
        "title": "Are you sure?",
        "queue": queue,
        "queue_url": queue_url(queue.name),
        "job_id": job_id,
        "job_url": job_url(queue.name, job_id) if job_id is not None else "",
        "action": action,
        "question": question,
        "paused_queues": paused_queues(),
    }
    return _render(request, model_admin, "confirm.html", context)


def _render(
    request: HttpRequest, model_admin: ModelAdmin, template: str, context: dict[str, Any]
) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "can_change": model_admin.has_change_permission(request),
        "overview_url": reverse("admin:django_convoy_queue_changelist"),
        "find_url": reverse("admin:django_convoy_queue_find"),
        "live_url": reverse("admin:django_convoy_queue_statistics"),
        "live_every": LIVE_REFRESH_SECONDS,
        **context,
    }
    return TemplateResponse(request, f"admin/django_convoy/{template}", context)
