"""The URLs a site includes to serve convoy's metrics.

``path("convoy/", include("django_convoy.urls"))`` serves ``convoy/metrics``, guarded by
``CONVOY["METRICS"]``. The admin dashboard is mounted by the admin itself.
"""

from django.urls import path

from .observability.views import metrics

app_name = "django_convoy"
urlpatterns = [path("metrics", metrics, name="metrics")]
