"""OpenTelemetry: a span per add and per run, the run's a child of its add's across processes."""

import json

import pytest

from django_convoy import get_queue
from django_convoy.observability import tracing
from django_convoy.store import decode_body
from django_convoy.store.bodies import split_body
from tests.helpers import manage

pytest.importorskip("opentelemetry.sdk")


def spans_of(*args: str, path) -> list[dict]:
    process = manage(*args, env={"CONVOY_TEST_SPANS": str(path)})
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_span_is_the_child_of_the_add_span_across_processes(tmp_path):
    queue = get_queue("default")
    queue.add_job("untraced", {"n": 1})  # this process has no tracer: a body without context
    assert (
        not queue.client.hget(queue.keys.jobs, "untraced").split("|", 4)[4].startswith('{"trace"')
    )
    produced = spans_of(
        "shell",
        "-c",
        "from tests.jobs import tasks; tasks.record.enqueue('traced')",
        path=tmp_path / "producer.jsonl",
    )
    ran = spans_of("convoy_worker", "default", "--burst", path=tmp_path / "worker.jsonl")

    (add,) = produced
    assert (add["name"], add["kind"]) == ("convoy add default", "PRODUCER")
    assert add["attributes"]["convoy.job_id"] == "rec-traced"
    assert add["attributes"]["convoy.added"] is True
    runs = {span["attributes"]["convoy.job_id"]: span for span in ran}
    traced = runs["rec-traced"]
    assert (traced["name"], traced["kind"]) == ("convoy run tests.jobs.tasks.record", "CONSUMER")
    assert (traced["trace_id"], traced["parent_id"]) == (add["trace_id"], add["span_id"])
    assert traced["attributes"] == {
        "messaging.system": "convoy",
        "messaging.destination.name": "default",
        "messaging.message.id": "rec-traced",
        "convoy.queue": "default",
        "convoy.job_id": "rec-traced",
        "convoy.attempt": 1,
        "convoy.task": "tests.jobs.tasks.record",
        "convoy.outcome": "done",
    }
    # A job added without a trace context still runs, in a trace of its own.
    assert runs["untraced"]["parent_id"] is None
    assert runs["untraced"]["attributes"]["convoy.outcome"] == "done"
    assert queue.stats()["processed_total"] == 2


def test_no_tracer_provider_means_no_span_and_no_context_in_the_job():
    assert tracing.tracer() is None
    with tracing.adding("default", ["x"]) as (head, traced):
        assert head == "{"
    assert tracing.start_run("default", "x", 1, None, "{}") is None


def test_a_traced_body_reads_as_its_task_and_payload():
    body = '{"trace":{"traceparent":"00-ab-cd-01"},"task":"t.f","payload":{"args":[1]}}'
    assert decode_body(body) == ("t.f", {"args": [1]})
    assert split_body(body, complete=True) == ("t.f", '{"args":[1]}')
