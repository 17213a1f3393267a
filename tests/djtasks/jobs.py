"""A Django task outside the app's ``tasks`` module: nothing imports this module but a worker
that meets one of its jobs (``django_convoy.discovery``)."""

from tests.djtasks.config import FRAMEWORK

if FRAMEWORK == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task


@task()
def paint(colour):
    return f"painted {colour}"
