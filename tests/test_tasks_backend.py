"""ConvoyBackend beyond the contract: configuration, unique job ids, and convoy's guarantees
(retries, timeouts, a worker killed mid-task, a late worker) as Django task results show them."""

import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.djtasks.config import FRAMEWORK

pytest.importorskip(FRAMEWORK, reason="no Tasks framework: pip install -e '.[tasks]'")

from django_convoy import InvalidJob, RedisUnavailable, get_queue  # noqa: E402
from django_convoy.backends import ConvoyBackendTask  # noqa: E402
from django_convoy.backends.framework import (  # noqa: E402
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_convoy.store.keys import task_result_key  # noqa: E402
from django_convoy.worker import Worker  # noqa: E402
from django_convoy.worker.execution import execute  # noqa: E402
from tests.djtasks import tasks  # noqa: E402
from tests.djtasks.config import TASKS  # noqa: E402
from tests.helpers import (  # noqa: E402
    ThreadedWorker,
    claims_of,
    hand_off_request,
    manage,
    wait_until,
)
from tests.jobs import tasks as convoy_tasks  # noqa: E402

if FRAMEWORK == "django.tasks":
    from django.tasks import task
else:
    from django_tasks import task

CONVOY = "django_convoy.backends.ConvoyBackend"
CONFIGURED = ", ".join(sorted(settings.CONVOY["QUEUES"]))


def with_backend(alias: str, **params):
    """Settings with one more TASKS alias (a ConvoyBackend unless BACKEND says otherwise)."""
    return override_settings(TASKS={**TASKS, alias: {"BACKEND": CONVOY, **params}})


def log() -> list[str]:
    return get_queue("default").client.lrange(tasks.LOG_KEY, 0, -1)


@pytest.fixture(autouse=True)
def gate():
    """Tasks called with gate=True wait for ``tasks.release``; never leave one waiting."""
    tasks.release.clear()
    yield tasks.release
    tasks.release.set()


# -- configuration -------------------------------------------------------------------------


def test_backend_and_tasks_are_built_without_touching_redis():
    unreachable = {"REDIS_URL": "redis://127.0.0.1:1/0", "QUEUES": {"default": {}}}
    with override_settings(CONVOY=unreachable), with_backend("offline", QUEUES=["default"]):
        offline = task(backend="offline")(tasks.noop_task.func)
        assert task_backends["offline"].check() == []
        with pytest.raises(RedisUnavailable, match="127.0.0.1:1 is unreachable"):
            offline.enqueue()


def test_the_test_settings_pass_every_system_check():
    call_command("check")
    assert task_backends["default"].check() == []


def test_check_reports_queues_with_no_convoy_queue():
    params = {
        "QUEUES": ["default", "nowhere", "trucks"],
        "OPTIONS": {"QUEUE_MAP": {"trucks": "monsterTruckz", "cars": "default"}},
    }
    with with_backend("mapped", **params):
        errors = task_backends["mapped"].check()
    assert [(e.id, e.msg) for e in errors] == [
        (
            "convoy.E103",
            "TASKS['mapped'] queue 'nowhere' is not in CONVOY['QUEUES'] "
            f"(configured: {CONFIGURED}).",
        ),
        (
            "convoy.E103",
            "TASKS['mapped'] queue 'trucks' maps to CONVOY queue 'monsterTruckz', "
            f"which is not in CONVOY['QUEUES'] (configured: {CONFIGURED}).",
        ),
        (
            "convoy.E104",
            "TASKS['mapped']['OPTIONS']['QUEUE_MAP'] maps queue 'cars', which is not "
            "in the backend's QUEUES (default, nowhere, trucks).",
        ),
    ]
    assert errors[0].hint == (
        "Add it to CONVOY['QUEUES'], or map it to a configured queue with OPTIONS['QUEUE_MAP']."
    )


def test_check_reports_bad_options_and_using_them_fails():
    options = {"RESULT_TTL": 0, "UNIQUE_BY_ARGS": "yes", "DATABASE": "nope", "RETRIES": 3}
    with with_backend("bad", QUEUES=["default"], OPTIONS=options):
        backend = task_backends["bad"]
        assert [(e.id, e.msg) for e in backend.check()] == [
            ("convoy.E101", "TASKS['bad']['OPTIONS'] has an unknown key 'RETRIES'."),
            (
                "convoy.E102",
                "TASKS['bad']['OPTIONS']['RESULT_TTL'] must be a number of seconds > 0, not 0.",
            ),
            (
                "convoy.E102",
                "TASKS['bad']['OPTIONS']['UNIQUE_BY_ARGS'] must be True or False, not 'yes'.",
            ),
            (
                "convoy.E102",
                "TASKS['bad']['OPTIONS']['DATABASE'] must be an alias in DATABASES "
                f"({', '.join(settings.DATABASES)}), not 'nope'.",
            ),
        ]
        with pytest.raises(ImproperlyConfigured, match="unknown key 'RETRIES'"):
            tasks.noop_task.using(backend="bad").enqueue()


def test_queue_map_sends_a_django_queue_to_a_convoy_queue():
    params = {"QUEUES": ["trucks"], "OPTIONS": {"QUEUE_MAP": {"trucks": "monsterTrucks"}}}
    with with_backend("mapped", **params):
        result = tasks.noop_task.using(backend="mapped", queue_name="trucks").enqueue()
        assert get_queue("monsterTrucks").get_job(result.id).state == "queued"
        assert task_backends["mapped"].get_result(result.id).task.queue_name == "trucks"


def test_queue_with_no_convoy_queue_is_refused_at_enqueue():
    with with_backend("anywhere", QUEUES=[]):
        elsewhere = tasks.noop_task.using(backend="anywhere", queue_name="nowhere")
        with pytest.raises(InvalidTask) as caught:
            elsewhere.enqueue()
    assert str(caught.value) == (
        "Queue 'nowhere' is not valid for backend: CONVOY['QUEUES'] has no queue 'nowhere' "
        f"(configured: {CONFIGURED})."
    )


def test_importing_the_backend_without_a_tasks_framework_says_what_to_install(monkeypatch):
    for name in ("django.tasks", "django_tasks"):
        monkeypatch.setitem(sys.modules, name, None)  # as if neither were installed
    for name in (
        "django_convoy.backends",
        "django_convoy.backends.results",
        "django_convoy.backends.framework",
    ):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError) as caught:
        import django_convoy.backends  # noqa: F401
    assert str(caught.value) == (
        "django_convoy.backends needs Django's Tasks framework: Django 6 ships it as "
        "django.tasks; on Django 5.2 install the django-tasks backport with "
        "pip install 'django-convoy[tasks]' and add 'django_tasks' to INSTALLED_APPS."
    )


# -- the convoy task class: unique job ids -----------------------------------------------


def test_task_decorator_takes_convoy_options():
    assert isinstance(tasks.wash_truck, ConvoyBackendTask)
    assert tasks.wash_truck.job_id(7) == "truck-7"
    assert tasks.wash_truck.if_processing == "rerun"
    assert tasks.wash_truck.using(priority=5).job_id is tasks.wash_truck.job_id
    with pytest.raises(InvalidTask) as caught:
        task(if_processing="sometimes")(tasks.noop_task.func)
    assert str(caught.value) == "if_processing must be one of ('ignore', 'rerun'), not 'sometimes'."
    with pytest.raises(InvalidTask, match="^job_id must be a function"):
        task(job_id="truck")(tasks.noop_task.func)


def test_without_a_job_id_every_enqueue_is_a_new_run():
    first, second = tasks.noop_task.enqueue(1), tasks.noop_task.enqueue(1)
    assert first.id != second.id and first.added and second.added
    assert get_queue("default").stats()["queued"] == 2


def test_enqueueing_a_queued_job_id_returns_that_run_not_added():
    enqueued = []

    def receiver(task_result, **kwargs):
        enqueued.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        first = tasks.wash_truck.enqueue(7)
        again = tasks.wash_truck.enqueue(7)
    finally:
        task_enqueued.disconnect(receiver)
    assert (first.added, again.added) == (True, False)
    assert again.id == first.id and again == first and again.status == TaskResultStatus.READY
    assert tasks.wash_truck.enqueue(8).id != first.id
    assert get_queue("monsterTrucks").get_job("truck-7").state == "queued"
    assert enqueued == [first.id]


def test_enqueueing_a_running_job_id_with_rerun_queues_exactly_one_more_run(gate):
    first = tasks.wash_truck.enqueue(7, gate=True)
    with ThreadedWorker("monsterTrucks"):
        wait_until(lambda: tasks.wash_truck.get_result(first.id).status == "RUNNING")
        rerun = tasks.wash_truck.enqueue(7)
        again = tasks.wash_truck.enqueue(7)
        assert rerun.added and rerun.id != first.id and rerun.status == TaskResultStatus.READY
        assert not again.added and again.id == rerun.id
        gate.set()
        wait_until(lambda: tasks.wash_truck.get_result(rerun.id).is_finished)
    assert tasks.wash_truck.get_result(first.id).return_value == "truck 7 is clean"
    assert tasks.wash_truck.get_result(rerun.id).status == TaskResultStatus.SUCCESSFUL
    assert log() == ["wash 7", "wash 7"]


def test_enqueueing_a_running_job_id_without_rerun_returns_the_running_run(gate):
    first = tasks.inspect_truck.enqueue(3, gate=True)
    with ThreadedWorker("monsterTrucks"):
        wait_until(lambda: tasks.inspect_truck.get_result(first.id).status == "RUNNING")
        again = tasks.inspect_truck.enqueue(3)
        assert (again.id, again.added, again.status) == (first.id, False, "RUNNING")
        gate.set()
    assert tasks.inspect_truck.get_result(first.id).return_value == 3


def test_unique_by_args_derives_job_ids_from_the_arguments():
    with with_backend("unique", QUEUES=["default"], OPTIONS={"UNIQUE_BY_ARGS": True}):
        add = tasks.add.using(backend="unique")
        first, again, other = add.enqueue(1, 2), add.enqueue(1, 2), add.enqueue(2, 1)
    assert again.id == first.id and not again.added
    assert other.id != first.id and other.added
    assert get_queue("default").stats()["queued"] == 2


def test_job_id_held_by_a_convoy_task_is_refused():
    get_queue("monsterTrucks").add_job("truck-9")
    with pytest.raises(InvalidJob) as caught:
        tasks.wash_truck.enqueue(9)
    assert str(caught.value) == (
        "Job id 'truck-9' of queue 'monsterTrucks' is held by a job that was not enqueued "
        "through Django's Tasks framework; nothing was enqueued."
    )


# -- on convoy's workers -------------------------------------------------------------------


def test_one_worker_runs_convoy_tasks_and_django_tasks_side_by_side():
    convoy_tasks.add.enqueue(1, 2)
    result = tasks.add.enqueue(1, 2)
    Worker(["default"], burst=True).run()
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert get_queue("default").stats()["processed_total"] == 2


def test_django_tasks_run_in_the_workers_child_processes_too():
    result = tasks.get_task_id.enqueue()
    failed = tasks.failing_task_value_error.enqueue()
    Worker(["default"], burst=True, pool="processes", concurrency=1).run()
    result.refresh()
    failed.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, result.id)
    assert (failed.status, failed.errors[0].exception_class) == ("FAILED", ValueError)


def test_priority_and_run_after_reach_the_queue():
    queue = get_queue("default")
    low = tasks.noop_task.using(priority=-10).enqueue()
    high = tasks.noop_task.using(priority=50).enqueue()
    run_after = timezone.now() + timedelta(minutes=5)
    later = tasks.noop_task.using(run_after=run_after).enqueue()
    assert [job.id for job in queue.claim(2, "w").runs] == [high.id, low.id]
    job = queue.get_job(later.id)
    assert job.state == "scheduled"
    assert abs(job.due_at - run_after) < timedelta(milliseconds=1)


def test_run_after_is_due_by_the_redis_clock():
    queue = get_queue("default")
    seconds, micros = queue.client.time()
    due = datetime.fromtimestamp(seconds + micros / 1e6 + 0.3, tz=UTC)
    result = tasks.calculate_meaning_of_life.using(run_after=due).enqueue()
    with ThreadedWorker("default"):
        wait_until(lambda: tasks.calculate_meaning_of_life.get_result(result.id).is_finished)
    result.refresh()
    assert result.return_value == 42 and result.started_at >= due - timedelta(milliseconds=1)


def test_a_failed_attempt_is_retried_and_every_attempt_is_kept():
    result = tasks.flaky.enqueue(failures=2)  # queue "retrying": MAX_ATTEMPTS 3
    Worker(["retrying"], max_jobs=3).run()
    wait_until(lambda: tasks.flaky.get_result(result.id).is_finished)
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 3, 3)
    assert [e.exception_class for e in result.errors] == [RuntimeError, RuntimeError]
    assert "RuntimeError: attempt 2 fails" in result.errors[1].traceback


def test_a_run_past_its_timeout_fails_with_job_timeout():
    result = tasks.hang.enqueue(1.0)  # queue "fast": JOB_TIMEOUT 0.5 s, MAX_ATTEMPTS 1
    with ThreadedWorker("fast"):
        wait_until(lambda: tasks.hang.get_result(result.id).is_finished)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "django_convoy.exceptions.JobTimeout"
    time.sleep(0.7)  # the task returns now: too late, its write is refused
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and len(result.errors) == 1


def test_worker_killed_mid_task_is_recovered_and_reports_attempt_2():
    queue = get_queue("crashy")  # LEASE 1 s
    result = tasks.survive_a_crash.enqueue(30)
    worker = manage("convoy_worker", "crashy", "--no-jam-guard")
    try:
        wait_until(lambda: log(), timeout=20)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed = log()[0].split()[2]
    result.refresh()
    assert (result.status, result.worker_ids) == (TaskResultStatus.RUNNING, [killed])

    wait_until(lambda: queue.get_job(result.id).state == "jammed", timeout=5)
    (recovered,) = queue.jam_guard()
    assert recovered.action == "requeued"
    result.refresh()
    assert result.status == TaskResultStatus.READY

    Worker(["crashy"], burst=True).run()
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 2, 2)
    assert result.worker_ids[0] == killed and result.worker_ids[1] != killed
    assert log()[1] == f"start 2 {result.worker_ids[1]}"


def test_a_run_jammed_more_than_max_jams_times_fails_with_job_jammed(redis_client):
    queue = get_queue("fast")  # MAX_JAMS 3
    result = tasks.hang.enqueue(0)
    while queue.claim(1, "dying-worker").runs:
        redis_client.zadd(queue.keys.processing, {result.id: 1})  # its lease ran out
        queue.jam_guard()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.finished_at is not None
    assert result.errors[0].exception_class_path == "django_convoy.exceptions.JobJammed"


def test_a_late_worker_cannot_write_its_result(redis_client, gate):
    finished = []

    def receiver(task_result, **kwargs):
        finished.append(task_result.return_value)

    queue = get_queue("default")
    result = tasks.held_first_time.enqueue()
    (first,) = queue.claim(1, "worker-a").runs
    late = threading.Thread(target=execute, args=(first, "worker-a"))
    task_finished.connect(receiver)
    late.start()
    wait_until(lambda: tasks.held_first_time.get_result(result.id).status == "RUNNING")

    # worker-a stops renewing its lease: the jam guard gives the run to worker-b.
    redis_client.zadd(queue.keys.processing, {result.id: 1})
    assert [job.action for job in queue.jam_guard()] == ["requeued"]
    (second,) = queue.claim(1, "worker-b").runs
    outcomes = []
    worker_b = threading.Thread(target=lambda: outcomes.append(execute(second, "worker-b")))
    worker_b.start()  # on a thread of its own, as in a worker (and away from this thread's db)
    worker_b.join(5)
    assert outcomes[0][0] is None
    assert queue.ack([(second.id, second.token)]) == [1]

    gate.set()  # worker-a's task returns only now
    late.join(5)
    task_finished.disconnect(receiver)
    assert queue.ack([(first.id, first.token)]) == [0]
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", "attempt 2")
    assert result.worker_ids == ["worker-a", "worker-b"]
    assert finished == ["attempt 2"]  # worker-a's run did not finish, as far as anyone knows


def test_a_run_deleted_before_it_ran_reads_failed():
    result = tasks.noop_task.enqueue()
    assert get_queue("default").purge() == 1
    result.refresh()
    assert (result.status, result.errors, result.worker_ids) == (TaskResultStatus.FAILED, [], [])


def test_a_signal_receiver_that_raises_cannot_change_the_outcome(caplog):
    def boom(**kwargs):
        raise RuntimeError("receiver failed")

    for signal_ in (task_enqueued, task_started, task_finished):
        signal_.connect(boom)
    try:
        good = tasks.calculate_meaning_of_life.enqueue()
        bad = tasks.failing_task_value_error.enqueue()
        Worker(["default"], burst=True).run()
    finally:
        for signal_ in (task_enqueued, task_started, task_finished):
            signal_.disconnect(boom)
    good.refresh()
    bad.refresh()
    assert (good.status, good.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
    assert bad.status == TaskResultStatus.FAILED
    assert bad.errors[0].exception_class is ValueError
    assert caplog.text.count("receiver failed") >= 6


# -- results' lifetime ---------------------------------------------------------------------


def test_result_is_kept_result_ttl_after_the_run_ends(redis_client):
    queue = get_queue("default")
    ttl = {**TASKS["default"], "OPTIONS": {"RESULT_TTL": 0.5}}
    with override_settings(TASKS={**TASKS, "default": ttl}):
        result = tasks.calculate_meaning_of_life.enqueue()
        key = task_result_key(queue.key_prefix, queue.name, result.id)
        waiting = redis_client.pttl(key)
        assert (queue.config.failed_ttl + 0.5) * 1000 - 1000 < waiting
        Worker(["default"], burst=True).run()
        assert 0 < redis_client.pttl(key) <= 500
        assert queue.get_job(result.id) is None  # the job's id is released
        assert tasks.calculate_meaning_of_life.get_result(result.id).return_value == 42
        time.sleep(0.6)
        with pytest.raises(TaskResultDoesNotExist):
            tasks.calculate_meaning_of_life.get_result(result.id)


def test_failed_result_outlives_the_failed_job_by_result_ttl(redis_client):
    queue = get_queue("default")
    result = tasks.failing_task_value_error.enqueue()
    Worker(["default"], burst=True).run()
    key = task_result_key(queue.key_prefix, queue.name, result.id)
    keep = (queue.config.failed_ttl + 24 * 3600) * 1000
    assert keep - 5000 < redis_client.pttl(key) <= keep
    assert queue.get_job(result.id).state == "failed"


def test_an_idle_worker_is_handed_a_task_run_without_claiming_it(monkeypatch, redis_client):
    claimed = claims_of(monkeypatch)
    queue = get_queue("default")
    with ThreadedWorker("default") as worker:
        wait_until(lambda: hand_off_request(queue, worker.id))
        result = tasks.calculate_meaning_of_life.enqueue()
        wait_until(lambda: tasks.calculate_meaning_of_life.get_result(result.id).is_finished)
    assert tasks.calculate_meaning_of_life.get_result(result.id).return_value == 42
    assert claimed == []  # no claim returned it: the add handed it over


def test_a_run_cancelled_before_it_ran_reads_failed_with_a_job_cancelled_error():
    result = tasks.noop_task.enqueue()
    assert get_queue("default").cancel(result.id) == "queued"
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == [
        "django_convoy.exceptions.JobCancelled"
    ]
    assert get_queue("default").get_job(result.id) is None  # its id is free


def test_a_run_cancelled_while_running_reads_failed_and_cannot_write_its_result(gate):
    queue = get_queue("default")
    result = tasks.held_first_time.enqueue()
    (run,) = queue.claim(1, "worker-a").runs
    late = threading.Thread(target=execute, args=(run, "worker-a"))
    late.start()
    wait_until(lambda: tasks.held_first_time.get_result(result.id).worker_ids)  # it started
    assert queue.cancel(result.id, by="alice") == "processing"
    gate.set()  # the task returns only now: its result write is refused
    late.join(5)
    assert queue.ack([(run.id, run.token)]) == [0]
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == [
        "django_convoy.exceptions.JobCancelled"
    ]
    assert result.worker_ids == ["worker-a"]


def drain_until_finished(result, timeout=10.0):
    from django_convoy.testing import drain

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drain(get_queue("retrying").name)
        result.refresh()
        if result.status in ("SUCCESSFUL", "FAILED"):
            return result
        time.sleep(0.05)
    raise AssertionError(f"{result.id} did not finish: {result.status}")


def test_a_tasks_own_max_attempts_and_retry_on_override_the_queues():
    retried = drain_until_finished(tasks.picky.enqueue("os"))  # the queue allows 3 attempts
    assert (retried.status, retried.attempts) == ("FAILED", 2)
    assert [e.exception_class_path for e in retried.errors] == ["builtins.OSError"] * 2
    not_retried = drain_until_finished(tasks.picky.enqueue("value"))
    assert (not_retried.status, not_retried.attempts) == ("FAILED", 1)


def never_defined():
    pass


def test_a_bad_task_policy_is_refused_when_the_task_is_defined():
    with pytest.raises(InvalidTask, match="max_attempts must be an int >= 1, not 0"):
        task(max_attempts=0)(never_defined)


def test_a_task_defined_in_any_module_of_an_installed_app_runs_on_a_worker():
    """The worker process never imported tests.djtasks.jobs: it does so for the job, because
    the module lies inside an installed app."""
    from tests.djtasks import jobs

    result = jobs.paint.enqueue("red")
    worker = manage("convoy_worker", "default", "--burst")
    assert worker.wait(60) == 0, worker.stdout.read()
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", "painted red")


def test_a_task_outside_every_installed_app_is_refused_with_a_clear_error():
    from tests import stray_jobs

    result = stray_jobs.stray.enqueue()
    worker = manage("convoy_worker", "default", "--burst")
    assert worker.wait(60) == 0, worker.stdout.read()
    job = get_queue("default").get_job(result.id)
    assert job.state == "failed"
    assert job.last_error["type"] == "django_convoy.exceptions.UnknownTask"
    assert (
        "'tests.stray_jobs.stray' is not in a module of an installed app"
        in (job.last_error["message"])
    )


def test_only_modules_inside_an_installed_apps_package_are_candidates():
    from django_convoy.discovery import app_module_of

    assert app_module_of("tests.djtasks.jobs.paint") == "tests.djtasks.jobs"
    assert app_module_of("tests.djtasks.jobs.Outer.method") == "tests.djtasks.jobs.Outer"
    assert app_module_of("os.system") is None
    assert app_module_of("tests.stray_jobs.stray") is None
