"""The fault suite's job, which journals each run's start and end, on the queues of the cluster
tests' processes (``settings.py``)."""

from django.conf import settings

from django_convoy import convoy_processor
from tests.faults.tasks import perform

for _queue in settings.CLUSTER_QUEUES:
    convoy_processor(_queue)(perform)
