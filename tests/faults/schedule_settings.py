"""The fault settings with the schedules of ``test_schedules.py``: only those named in
``$CONVOY_TEST_SCHEDULES`` (comma-separated), so that each scenario fires its own. The other
scenarios keep ``settings.py``, without schedules: their workers fire none."""

import os

from .settings import *  # noqa: F403

TASK = "tests.faults.tasks.scheduled"
SCHEDULES = {
    # Every second, a job per tick (overlap allow): the kill storm counts each tick's job.
    "storm": {"task": TASK, "every": 1, "overlap": "allow"},
    # A job slower than its interval: overlap skip leaves no two runs at once.
    "slow": {"task": TASK, "every": 1, "kwargs": {"sleep": 2.5}},
    # The same schedule with each catch_up, for the scenario where every scheduler is away.
    "latest": {"task": TASK, "every": 1, "overlap": "allow", "catch_up": "latest"},
    "none": {"task": TASK, "every": 1, "overlap": "allow", "catch_up": "none"},
    # Every 2 s (late after 10 s): a Redis restart of 3 s must lose none of its ticks.
    "restart": {"task": TASK, "every": 2, "overlap": "allow"},
}
CONVOY = {
    **CONVOY,  # noqa: F405
    "SCHEDULE": {
        name: SCHEDULES[name]
        for name in os.environ.get("CONVOY_TEST_SCHEDULES", "").split(",")
        if name in SCHEDULES
    },
}
