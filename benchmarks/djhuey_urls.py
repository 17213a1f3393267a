"""The admin alone: the demo project's URLs without convoy's (``benchmarks.djhuey_settings``)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
