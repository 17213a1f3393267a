"""Django's Tasks framework on convoy: ``TASKS = {"default": {"BACKEND":
"django_convoy.backends.ConvoyBackend", ...}}``.

``backend.py`` is the backend and its task class, ``results.py`` the runs' results in Redis,
``framework.py`` Django's Tasks framework from wherever this project has it (Django 6, or the
``django-tasks`` backport on Django 5.2). Importing this package without either says so.
"""

from .backend import ConvoyBackend, ConvoyBackendTask
from .results import ConvoyTaskResult

__all__ = ["ConvoyBackend", "ConvoyBackendTask", "ConvoyTaskResult"]
