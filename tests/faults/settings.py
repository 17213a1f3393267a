"""Settings of the processes a fault scenario starts: the test settings, plus the faults app
(its jobs and hooks) and its queues. The suite's own process keeps ``tests.settings``, so the
rest of the suite never sees them."""

from tests.settings import *  # noqa: F403

from .queues import FAULT_QUEUES

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults"]  # noqa: F405
CONVOY = {**CONVOY, "QUEUES": {**CONVOY["QUEUES"], **FAULT_QUEUES}}  # noqa: F405
