"""A contract for any backend of Django's Tasks framework, from Django's own backend tests.

Django's tests/tasks are written against its built-in backends; this mixin asks the same of
any backend: the validation rules and their exact messages, the results of enqueue and of a
run, failures, get_result and its errors, TaskResultMismatch, the task context, defer, async
tasks, a backend's own task class (Django 6.1), and pickling. A test class sets ``alias`` (a
TASKS alias whose QUEUES include "default" but not "queue-2") and implements ``run_worker()``,
which runs what was enqueued; ``executes_on_enqueue`` says the backend runs a task inside
``enqueue`` (the immediate backend), so that its results are final at once.

Run against ConvoyBackend, and against Django's ImmediateBackend as a calibration: a check
that fails there is checking something Django does not promise.
"""

import asyncio
import inspect
import logging
import pickle
from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.djtasks import tasks
from tests.djtasks.config import FRAMEWORK

if FRAMEWORK == "django.tasks":
    from django.tasks import TaskResultStatus, task, task_backends
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
else:
    from django_tasks import TaskResultStatus, task, task_backends
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch

NOT_SUPPORTED = "This backend does not support retrieving or refreshing results."


def run(coroutine):
    """Run an ``a*`` API call from these synchronous tests."""
    return asyncio.run(coroutine)


class TaskBackendContract:
    alias: str
    executes_on_enqueue = False

    def run_worker(self) -> None:
        """Run every task enqueued so far to its end."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------

    @property
    def backend(self):
        return task_backends[self.alias]

    def on_backend(self, defined, **options):
        return defined.using(backend=self.alias, **options)

    def after_run(self, result):
        """The result once a worker ran the task (re-read, where the backend can)."""
        self.run_worker()
        if self.backend.supports_get_result:
            result.refresh()
        return result

    def assert_finished_in_order(self, result):
        assert result.is_finished is True
        assert result.started_at is not None
        assert result.last_attempted_at is not None
        assert result.finished_at is not None
        assert result.started_at >= result.enqueued_at
        assert result.finished_at >= result.started_at

    # -- validation -------------------------------------------------------------------------

    def test_task_function_must_be_defined_at_module_level(self):
        def local_function():
            pass

        for function in (any, local_function):
            with pytest.raises(InvalidTask) as caught:
                task(backend=self.alias)(function)
            assert str(caught.value) == "Task function must be defined at a module level."

    def test_task_taking_context_needs_a_context_argument(self):
        with pytest.raises(InvalidTask) as caught:
            task(backend=self.alias, takes_context=True)(tasks.calculate_meaning_of_life.func)
        assert str(caught.value) == (
            "Task takes context but does not have a first argument of 'context'."
        )

    def test_priority_must_be_a_whole_number_in_range(self):
        if not self.backend.supports_priority:
            with pytest.raises(InvalidTask) as caught:
                self.on_backend(tasks.noop_task, priority=10)
            assert str(caught.value) == "Backend does not support setting priority of tasks."
            return
        for priority in (-101, 101, 3.1):
            with pytest.raises(InvalidTask) as caught:
                self.on_backend(tasks.noop_task, priority=priority)
            assert str(caught.value) == "priority must be a whole number between -100 and 100."
        for priority in (100, -100, 0):
            assert self.on_backend(tasks.noop_task, priority=priority).priority == priority

    def test_run_after_must_be_aware_where_it_is_supported(self):
        if not self.backend.supports_defer:
            with pytest.raises(InvalidTask) as caught:
                self.on_backend(tasks.noop_task, run_after=timezone.now())
            assert str(caught.value) == "Backend does not support run_after."
            return
        with pytest.raises(InvalidTask) as caught:
            self.on_backend(tasks.noop_task, run_after=datetime.now())
        assert str(caught.value) == "run_after must be an aware datetime."

    def test_queue_not_in_the_backends_queues_is_invalid(self):
        with pytest.raises(InvalidTask) as caught:
            self.on_backend(tasks.noop_task, queue_name="queue-2")
        assert str(caught.value) == "Queue 'queue-2' is not valid for backend."

    def test_async_task_is_valid_where_async_tasks_are_supported(self):
        assert self.backend.supports_async_task
        assert self.on_backend(tasks.noop_task_async).func is tasks.noop_task_async.func

    def test_validation_is_repeated_at_enqueue(self):
        anywhere = {**task_backends.settings[self.alias], "QUEUES": []}
        with override_settings(TASKS={**task_backends.settings, self.alias: anywhere}):
            elsewhere = self.on_backend(tasks.noop_task, queue_name="unknown_queue")
        message = "Queue 'unknown_queue' is not valid for backend."
        with pytest.raises(InvalidTask) as caught:
            elsewhere.enqueue()
        assert str(caught.value) == message
        with pytest.raises(InvalidTask) as caught:
            run(elsewhere.aenqueue())
        assert str(caught.value) == message

    # -- enqueue ----------------------------------------------------------------------------

    def test_enqueue_returns_a_result(self):
        defined = self.on_backend(tasks.noop_task)
        result = defined.enqueue(1, two=3)
        assert isinstance(result.id, str) and 0 < len(result.id) < 64
        assert result.task == defined
        assert (result.args, result.kwargs) == ([1], {"two": 3})
        assert result.backend == self.alias
        assert result.enqueued_at is not None
        expected = TaskResultStatus.SUCCESSFUL if self.executes_on_enqueue else "READY"
        assert result.status == expected

    def test_enqueue_refuses_arguments_that_are_not_json(self):
        for enqueue in (
            lambda: self.on_backend(tasks.noop_task).enqueue(datetime.now()),
            lambda: run(self.on_backend(tasks.noop_task).aenqueue(datetime.now())),
        ):
            with pytest.raises(TypeError, match="Unsupported type"):
                enqueue()

    def test_unfinished_result_has_no_return_value(self):
        if self.executes_on_enqueue:
            pytest.skip("this backend finishes every task inside enqueue")
        result = self.on_backend(tasks.calculate_meaning_of_life).enqueue()
        assert result.is_finished is False
        with pytest.raises(ValueError, match="^Task has not finished yet$"):
            _ = result.return_value

    @pytest.mark.parametrize("defined", [tasks.noop_task, tasks.noop_task_async])
    def test_result_after_a_run(self, defined):
        defined = self.on_backend(defined)
        result = self.after_run(defined.enqueue(1, two=3))
        assert result.status == TaskResultStatus.SUCCESSFUL
        self.assert_finished_in_order(result)
        assert result.return_value is None
        assert result.task == defined
        assert (result.args, result.kwargs) == ([1], {"two": 3})
        assert result.attempts == 1
        assert len(result.worker_ids) == 1

    @pytest.mark.parametrize("defined", [tasks.noop_task, tasks.noop_task_async])
    def test_result_after_a_run_enqueued_with_aenqueue(self, defined):
        defined = self.on_backend(defined)
        result = self.after_run(run(defined.aenqueue()))
        assert result.status == TaskResultStatus.SUCCESSFUL
        self.assert_finished_in_order(result)
        assert result.return_value is None
        assert (result.task, result.args, result.kwargs) == (defined, [], {})
        assert result.attempts == 1

    @pytest.mark.parametrize(
        "defined", [tasks.calculate_meaning_of_life, tasks.calculate_meaning_of_life_async]
    )
    def test_return_value(self, defined):
        result = self.after_run(self.backend.enqueue(self.on_backend(defined), [], {}))
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == 42
        result = self.after_run(run(self.backend.aenqueue(self.on_backend(defined), [], {})))
        assert result.return_value == 42

    def test_signals_are_sent_for_enqueue_start_and_finish(self, caplog):
        with caplog.at_level(logging.DEBUG, logger=FRAMEWORK):
            result = self.after_run(self.on_backend(tasks.noop_task).enqueue())
        logged = [record.getMessage() for record in caplog.records if record.name == FRAMEWORK]
        assert len(logged) == 3
        assert "enqueued" in logged[0] and result.id in logged[0]
        assert "state=RUNNING" in logged[1] and result.id in logged[1]
        assert "state=SUCCESSFUL" in logged[2] and result.id in logged[2]
        assert not any("NoneType" in line for line in logged)

    # -- failures ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "defined, exception, message",
        [
            (tasks.failing_task_value_error, ValueError, "This Task failed due to ValueError"),
            (tasks.failing_task_system_exit, SystemExit, "This Task failed due to SystemExit"),
        ],
    )
    def test_exception_fails_the_run(self, caplog, defined, exception, message):
        defined = self.on_backend(defined)
        with caplog.at_level(logging.ERROR, logger=FRAMEWORK):
            result = self.after_run(defined.enqueue())
        logged = [record for record in caplog.records if record.name == FRAMEWORK]
        assert len(logged) == 1
        assert "state=FAILED" in logged[0].getMessage()
        assert message in caplog.text
        assert result.status == TaskResultStatus.FAILED
        with pytest.raises(ValueError, match="^Task failed$"):
            _ = result.return_value
        self.assert_finished_in_order(result)
        assert result.errors[0].exception_class is exception
        assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")
        assert (result.task, result.args, result.kwargs) == (defined, [], {})

    def test_exception_with_an_exception_argument(self):
        result = self.after_run(self.on_backend(tasks.complex_exception).enqueue())
        assert result.status == TaskResultStatus.FAILED
        assert result._return_value is None
        assert result.errors[0].exception_class is ValueError
        assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback

    def test_return_value_that_is_not_json_fails_with_a_type_error(self):
        result = self.after_run(self.on_backend(tasks.complex_return_value).enqueue())
        assert result.status == TaskResultStatus.FAILED
        self.assert_finished_in_order(result)
        assert result._return_value is None
        assert result.errors[0].exception_class is TypeError
        assert "Unsupported type" in result.errors[0].traceback

    # -- get_result -------------------------------------------------------------------------

    def test_get_result_of_an_unknown_id(self):
        if not self.backend.supports_get_result:
            for call in (
                lambda: self.backend.get_result("123"),
                lambda: run(self.backend.aget_result(123)),
            ):
                with pytest.raises(NotImplementedError) as caught:
                    call()
                assert str(caught.value) == NOT_SUPPORTED
            return
        defined = self.on_backend(tasks.noop_task)
        with pytest.raises(TaskResultDoesNotExist):
            defined.get_result("123")
        with pytest.raises(TaskResultDoesNotExist):
            run(defined.aget_result("123"))

    def test_get_result_reads_what_enqueue_returned_then_the_outcome(self):
        if not self.backend.supports_get_result:
            pytest.skip("this backend cannot read results back")
        defined = self.on_backend(tasks.calculate_meaning_of_life)
        result = self.backend.enqueue(defined, (), {})
        assert defined.get_result(result.id) == result
        assert run(defined.aget_result(result.id)) == result
        self.run_worker()
        done = defined.get_result(result.id)
        assert (done.id, done.status, done.return_value) == (result.id, "SUCCESSFUL", 42)

    def test_get_result_of_another_tasks_result_is_a_mismatch(self):
        if not self.backend.supports_get_result:
            pytest.skip("this backend cannot read results back")
        result = self.backend.enqueue(self.on_backend(tasks.noop_task_async), (), {})
        expected = f"Task does not match (received {tasks.noop_task_async.module_path!r})"
        for call in (
            lambda: self.on_backend(tasks.noop_task).get_result(result.id),
            lambda: run(self.on_backend(tasks.noop_task).aget_result(result.id)),
        ):
            with pytest.raises(TaskResultMismatch) as caught:
                call()
            assert str(caught.value) == expected

    def test_refresh_reloads_the_result(self):
        result = self.on_backend(tasks.calculate_meaning_of_life).enqueue()
        if not self.backend.supports_get_result:
            for call in (result.refresh, lambda: run(result.arefresh())):
                with pytest.raises(NotImplementedError) as caught:
                    call()
                assert str(caught.value) == NOT_SUPPORTED
            return
        assert result.status == TaskResultStatus.READY
        self.run_worker()
        run(result.arefresh())
        assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
        result.refresh()
        assert result.is_finished

    # -- context ----------------------------------------------------------------------------

    def test_task_taking_context_sees_its_result(self):
        result = self.after_run(self.on_backend(tasks.get_task_id).enqueue())
        assert result.return_value == result.id

    def test_context_counts_the_attempt(self):
        result = self.after_run(self.on_backend(tasks.check_context).enqueue(1))
        assert result.status == TaskResultStatus.SUCCESSFUL

    # -- defer ------------------------------------------------------------------------------

    def test_run_after_defers_the_run(self):
        if not self.backend.supports_defer:
            with pytest.raises(InvalidTask) as caught:
                self.backend.validate_task(tasks.noop_task.using(run_after=timezone.now()))
            assert str(caught.value) == "Backend does not support run_after."
            return
        later = timezone.now() + timedelta(hours=1)
        waiting = self.on_backend(tasks.calculate_meaning_of_life, run_after=later).enqueue()
        due = self.on_backend(
            tasks.calculate_meaning_of_life, run_after=timezone.now() - timedelta(seconds=1)
        ).enqueue()
        self.run_worker()
        waiting.refresh()
        due.refresh()
        assert (waiting.status, waiting.task.run_after) == (TaskResultStatus.READY, later)
        assert due.status == TaskResultStatus.SUCCESSFUL

    # -- the backend's own task class -------------------------------------------------------

    def test_task_decorator_builds_the_backends_task_class(self):
        if inspect.signature(task).parameters.get("kwargs") is None:
            pytest.skip("this Tasks framework's @task passes no extra keyword arguments")
        defined = task(backend=self.alias, priority=10, queue_name="default")(tasks.noop_task.func)
        assert type(defined) is self.backend.task_class
        assert (defined.priority, defined.queue_name, defined.backend) == (
            10,
            "default",
            self.alias,
        )
        assert defined.takes_context is False and defined.run_after is None
        with pytest.raises(TypeError):
            task(backend=self.alias, unknown_param=123)(tasks.noop_task.func)

    # -- pickling ---------------------------------------------------------------------------

    def test_task_and_result_survive_pickling(self):
        defined = self.on_backend(tasks.noop_task, priority=5)
        assert pickle.loads(pickle.dumps(defined)) == defined
        result = defined.enqueue(1, two=3)
        assert pickle.loads(pickle.dumps(result)) == result
