from django.apps import AppConfig


class FaultsConfig(AppConfig):
    """The fault-injection suite's app: its jobs (``tasks.py``) and in-process fault hooks."""

    name = "tests.faults"
    label = "convoy_faults"

    def ready(self) -> None:
        from . import hooks

        hooks.install()  # a no-op unless a scenario set CONVOY_FAULT_* for this process
