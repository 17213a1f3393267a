"""Finding a task that no module imported so far defined: the one import of a name read from
Redis, and only inside an installed app.

Tasks are registered when their module is imported (``@convoy_task``, a Django ``@task`` on a
``ConvoyBackend``); ``apps.py`` imports each installed app's ``tasks`` module. A task defined in
another module of an app (``myapp/jobs.py``) is found here, when a worker first meets it: the
module is imported only if it lies inside an installed app's package, and what runs is still
only what its import registered, never an object looked up by name.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps


def app_module_of(name: str) -> str | None:
    """The longest module path in the dotted ``name`` that lies inside an installed app's
    package (the app's own package excluded: its ``__init__`` ran already), or None."""
    parts = name.split(".")
    packages = [config.name for config in apps.get_app_configs()]
    for end in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:end])
        if any(module.startswith(package + ".") for package in packages):
            return module
    return None


def import_task_module(name: str) -> str:
    """Import the module that should define task ``name``; return "" on success, else why it
    was not imported (for the error that fails the job)."""
    module = app_module_of(name)
    if module is None:
        return (
            f"{name!r} is not in a module of an installed app: convoy imports task modules "
            "only from installed apps' packages."
        )
    try:
        import_module(module)
    except ImportError as exc:
        return f"its module {module!r} could not be imported ({exc})."
    return ""
