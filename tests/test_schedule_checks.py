"""A schedule's mistakes are reported by ``manage.py check`` (convoy.E017 to E024), each with
its exact message; a valid schedule becomes a ``Schedule``."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_convoy.checks import check_settings
from django_convoy.schedules import get_schedules
from django_convoy.schedules.ticks import Cron, Every

TASK = "tests.jobs.tasks.record"


def problems(schedule) -> list[tuple[str, str]]:
    with override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": schedule}):
        return [(error.id, error.msg) for error in check_settings()]


def test_a_valid_schedule_passes_and_is_read_with_its_defaults():
    entry = {"task": TASK, "cron": "0 3 * * *", "timezone": "Europe/Paris", "args": ["k"]}
    assert problems({"nightly": entry}) == []
    with override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": {"nightly": entry}}):
        (schedule,) = get_schedules()
    assert schedule.timing == Cron("0 3 * * *", "Europe/Paris")
    assert (schedule.queue, schedule.args, schedule.kwargs) == ("default", ["k"], {})
    assert (schedule.overlap, schedule.catch_up, schedule.enabled) == ("skip", "latest", True)


def test_the_time_zone_defaults_to_settings_time_zone():
    entry = {"task": TASK, "cron": "0 3 * * *"}
    with override_settings(
        CONVOY={**settings.CONVOY, "SCHEDULE": {"n": entry}}, TIME_ZONE="America/New_York"
    ):
        assert get_schedules()[0].timing.zone == "America/New_York"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            ["nightly"],
            ("convoy.E017", "CONVOY['SCHEDULE'] must be a dict of schedule name -> settings, "
             "not list."),
        ),
        (
            {"bad@name": {"task": TASK, "every": 5}},
            ("convoy.E017", "Schedule name 'bad@name' is not valid."),
        ),
        (
            {"n": {"task": TASK, "every": 5, "when": 1}},
            ("convoy.E018", "Schedule 'n' has an unknown key 'when'."),
        ),
        (
            {"n": {"task": TASK, "every": 5, "cron": "* * * * *"}},
            ("convoy.E019", "Schedule 'n' sets both 'cron' and 'every'; set one."),
        ),
        (
            {"n": {"task": TASK}},
            ("convoy.E019", "Schedule 'n' sets neither of 'cron' and 'every'; set one."),
        ),
        (
            {"n": {"task": TASK, "cron": "61 * * * *"}},
            ("convoy.E020", "Schedule 'n': '61 * * * *' is not a valid cron expression "
             "(Bad minute)."),
        ),
        (
            {"n": {"task": TASK, "every": 0.5}},
            ("convoy.E021", "Schedule 'n': every must be a whole number of seconds >= 1, not 0.5."),
        ),
        (
            {"n": {"task": TASK, "every": 5, "overlap": "queue"}},
            ("convoy.E021", "Schedule 'n': overlap must be one of ('skip', 'allow'), not 'queue'."),
        ),
        (
            {"n": {"task": "tests.jobs.tasks.nothing_here", "every": 5}},
            ("convoy.E022", "Schedule 'n': task 'tests.jobs.tasks.nothing_here' is not a "
             "@convoy_task or a Django task."),
        ),
        (
            {"n": {"task": TASK, "cron": "0 3 * * *", "timezone": "Mars/Olympus"}},
            ("convoy.E024", "Schedule 'n': 'Mars/Olympus' is not a known time zone."),
        ),
    ],
)  # fmt: skip
def test_each_schedule_problem_is_reported_with_its_id_and_message(schedule, expected):
    assert problems(schedule) == [expected]


def test_a_schedule_of_a_task_bound_to_a_missing_queue_is_reported():
    queues = {name: {} for name in settings.CONVOY["QUEUES"] if name != "default"}
    convoy = {**settings.CONVOY, "QUEUES": queues, "SCHEDULE": {"n": {"task": TASK, "every": 5}}}
    with override_settings(CONVOY=convoy):
        found = [(e.id, e.msg) for e in check_settings() if e.id == "convoy.E023"]
    assert found == [
        (
            "convoy.E023",
            f"Schedule 'n': task {TASK} goes to queue 'default', which is not in "
            f"CONVOY['QUEUES'] (configured: {', '.join(sorted(queues))}).",
        )
    ]


def test_a_bad_schedule_makes_get_schedules_raise_with_the_same_message():
    with (
        override_settings(CONVOY={**settings.CONVOY, "SCHEDULE": {"n": {"task": TASK}}}),
        pytest.raises(ImproperlyConfigured, match="sets neither of 'cron' and 'every'"),
    ):
        get_schedules()


def test_a_task_declared_with_every_is_a_schedule_named_after_its_dotted_path():
    from django_convoy import convoy_task
    from django_convoy.decorators import _tasks

    def report():
        pass

    report.__qualname__ = "heartbeat_report"  # as a module-level task's would read
    heartbeat_report = convoy_task(queue="default", every=30)(report)

    try:
        with override_settings(CONVOY={**settings.CONVOY}):
            schedules = {s.name: s for s in get_schedules()}
        assert schedules[heartbeat_report.name].timing == Every(30)
        assert schedules[heartbeat_report.name].task == heartbeat_report.name
    finally:
        del _tasks[heartbeat_report.name]
