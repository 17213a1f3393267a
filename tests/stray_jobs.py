"""A Django task in a module of no installed app (``tests`` is a package, not an app): a worker
must refuse to import it for a job that names it."""

from tests.djtasks.config import FRAMEWORK

if FRAMEWORK == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task


@task()
def stray():
    return "should never run on a worker"
