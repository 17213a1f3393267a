"""Mount the convoy dashboard in the admin, under "Convoy" on the index.

The ``Queue`` model has no table; its ModelAdmin only lends the dashboard the admin's login,
permissions, log and URL names. The changelist URL is the overview and the change URL is a
queue's page, so the admin index and the "Recent actions" log link to them as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from .models import Queue


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """The dashboard: staff with ``view_queue`` look, those with ``change_queue`` act."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Refuse: queues come from ``settings.CONVOY``, not from the admin."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Refuse: a queue is removed from the settings; its jobs are purged with an action."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """Return the dashboard's URLs in place of the changelist, add, change and delete views."""
        # Imported here, when a URLconf is loaded, not where the admin is discovered: a worker
        # process discovers it too (django.setup), and has no use for the dashboard's views.
        from .dashboard import schedules, views

        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            def with_admin(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                return function(request, self, *args, **kwargs)

            return self.admin_site.admin_view(update_wrapper(with_admin, function))

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", view(views.overview), name=f"{prefix}_changelist"),
            path("statistics.json", view(views.statistics_json), name=f"{prefix}_statistics"),
            path("find/", view(views.find_job), name=f"{prefix}_find"),
            path("schedules/", view(schedules.schedules_page), name=f"{prefix}_schedules"),
            path(
                "schedules/<str:name>/do/<slug:action>/",
                view(schedules.schedule_action),
                name=f"{prefix}_schedule_action",
            ),
            path("queue/<str:name>/", view(views.queue_page), name=f"{prefix}_change"),
            path(
                "queue/<str:name>/do/<slug:action>/",
                view(views.queue_action),
                name=f"{prefix}_action",
            ),
            path("queue/<str:name>/job/<str:job_id>/", view(views.job_page), name=f"{prefix}_job"),
            path(
                "queue/<str:name>/result/<str:result_id>/",
                view(views.task_result_page),
                name=f"{prefix}_task_result",
            ),
            path(
                "queue/<str:name>/job/<str:job_id>/do/<slug:action>/",
                view(views.job_action),
                name=f"{prefix}_job_action",
            ),
        ]
