"""The test settings with a schedule, for the subprocesses of tests/test_scheduler.py (the rest
of the suite has none: every worker it starts would fire them)."""

from tests.settings import *  # noqa: F403

CONVOY = {
    **CONVOY,  # noqa: F405
    "SCHEDULE": {
        "every-second": {
            "task": "tests.jobs.tasks.record",
            "every": 1,
            "args": ["tick"],
            "overlap": "allow",
        },
        "nightly": {"task": "tests.jobs.tasks.record", "cron": "0 3 * * *", "args": ["n"]},
    },
}
