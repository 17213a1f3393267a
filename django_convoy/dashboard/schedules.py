"""The admin's Schedules page: every schedule with its timing, next and last tick, the outcome
of its last run (linking to the job), and, for staff with ``change_queue``, "run now", pause
and resume. A pause is stored in Redis, so every scheduler honours it; each action is recorded
in the admin log against the schedule's queue."""

from __future__ import annotations

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
)
from django.template.response import TemplateResponse
from django.urls import reverse

from ..models import Queue as QueueModel
from ..queue import get_queue
from ..schedules.listing import ScheduleView, describe, find
from ..schedules.scheduler import run_now
from ..store.schedules import ScheduleStore

ACTIONS = ("run-now", "pause", "resume")


def schedules_url() -> str:
    return reverse("admin:django_convoy_queue_schedules")


def schedules_page(request: HttpRequest, model_admin: ModelAdmin) -> HttpResponse:
    """Every schedule as Redis knows it now."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    rows = [_row(view) for view in describe()]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Convoy schedules",
        "can_change": model_admin.has_change_permission(request),
        "overview_url": reverse("admin:django_convoy_queue_changelist"),
        "find_url": reverse("admin:django_convoy_queue_find"),
        "rows": rows,
    }
    return TemplateResponse(request, "admin/django_convoy/schedules.html", context)


def _row(view: ScheduleView) -> dict:
    job_url = ""
    if view.last_job is not None:
        job_url = reverse(
            "admin:django_convoy_queue_job",
            args=[quote(view.schedule.queue), quote(view.state.job_id)],
        )
    urls = {
        f"{action.replace('-', '_')}_url": reverse(
            "admin:django_convoy_queue_schedule_action", args=[quote(view.name), action]
        )
        for action in ACTIONS
    }
    return {"view": view, "job_url": job_url, **urls}


def schedule_action(
    request: HttpRequest, model_admin: ModelAdmin, name: str, action: str
) -> HttpResponse:
    """Run a schedule now, pause it or resume it (POST, ``change_queue``)."""
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    schedule = find(unquote(name))
    if schedule is None or action not in ACTIONS:
        raise Http404(f"No schedule {unquote(name)!r} or no action {action!r}.")
    store = ScheduleStore(get_queue(schedule.queue).store)
    if action == "pause":
        store.pause(schedule.name)
        message = f"Paused schedule {schedule.name}: no scheduler fires its ticks until resumed."
    elif action == "resume":
        store.resume(schedule.name)
        message = f"Resumed schedule {schedule.name}: its next tick fires."
    else:
        reply = run_now(schedule)
        if reply.outcome != "added":
            messages.warning(
                request,
                f"Schedule {schedule.name} was not run: its last run {reply.job_id} is not "
                "over (overlap skip). Nothing was changed.",
            )
            return HttpResponseRedirect(schedules_url())
        message = (
            f"Ran schedule {schedule.name} now: added job {reply.job_id} to queue {schedule.queue}."
        )
    model_admin.log_change(request, QueueModel(name=schedule.queue), message)
    messages.success(request, message)
    return HttpResponseRedirect(schedules_url())
