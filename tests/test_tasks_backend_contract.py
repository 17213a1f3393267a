"""The Tasks backend contract, run against ConvoyBackend and, to calibrate it, ImmediateBackend."""

import pytest

from tests.djtasks.config import FRAMEWORK

pytest.importorskip(FRAMEWORK, reason="no Tasks framework: pip install -e '.[tasks]'")

from django_convoy.worker import Worker  # noqa: E402
from tests.task_backend_contract import TaskBackendContract  # noqa: E402


class TestConvoyBackend(TaskBackendContract):
    alias = "default"

    def run_worker(self) -> None:
        Worker(["default"], burst=True).run()


class TestImmediateBackend(TaskBackendContract):
    alias = "immediate"
    executes_on_enqueue = True

    def run_worker(self) -> None:
        pass  # it ran every task inside enqueue
