"""OpenTelemetry spans: one for each add, one for each run, the run's a child of its add's.

Only the API package is used (``django-convoy[otel]``); the application configures the SDK and
its exporters as for anything else. When the API is not installed, or no tracer provider is
set, ``tracer()`` says so with one check and convoy does nothing more: no span, no context in
the job.

The add's trace context travels with the job, in its body: ``{"trace": {...}, "task": ...,
"payload": ...}``, the carrier the configured propagators fill in (W3C ``traceparent`` by
default). A body without it (a job added before, or without tracing) runs as ever, in a span of
its own trace.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanKind, StatusCode
except ImportError:  # the otel extra is not installed
    trace = None
else:
    _PROVIDER_FROM_ENV = OTEL_PYTHON_TRACER_PROVIDER in os.environ

TRACE_FIELD = '{"trace":'
_made: tuple[Any, Any] = (None, None)  # (provider, its tracer)


def tracer() -> Any:
    """The tracer to use, or None when nothing would record a span."""
    global _made
    if trace is None:
        return None
    # The usual answer, asked on every add: no provider was set. get_tracer_provider() would
    # look the environment up first, a KeyError raised and caught each time (the largest part
    # of an add's Python); the API's own global says as much for nothing. Read defensively: an
    # API without it goes the public way.
    if getattr(trace, "_TRACER_PROVIDER", trace) is None and not _PROVIDER_FROM_ENV:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    if _made[0] is not provider:
        _made = (provider, provider.get_tracer("django_convoy"))
    return _made[1]


def _attributes(queue: str, job_id: str | None) -> dict[str, Any]:
    found = {
        "messaging.system": "convoy",
        "messaging.destination.name": queue,
        "convoy.queue": queue,
    }
    if job_id is not None:
        found["messaging.message.id"] = found["convoy.job_id"] = job_id
    return found


def adding(queue: str, job_ids: Sequence[str]) -> AbstractContextManager[Any]:
    """Around an add: yield the body's head (``'{'``, or ``'{"trace":{...},'`` to carry this
    add's span to its runs) and a callback taking the results (``AddResult`` each)."""
    found = tracer()
    if found is None:  # the usual case, on every add: no generator to run
        return _NOT_TRACED
    return _traced_add(found, queue, job_ids)


@contextmanager
def _traced_add(found: Any, queue: str, job_ids: Sequence[str]) -> Any:
    single = job_ids[0] if len(job_ids) == 1 else None
    attributes = {**_attributes(queue, single), "messaging.batch.message_count": len(job_ids)}
    with found.start_as_current_span(
        f"convoy add {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)

        def ended(results: Sequence[Any]) -> None:
            if single is not None:
                span.set_attribute("convoy.added", results[0].added)
                span.set_attribute("convoy.state", results[0].state)
            else:
                span.set_attribute("convoy.added_count", sum(r.added for r in results))

        yield TRACE_FIELD + json.dumps(carrier, separators=(",", ":")) + ",", ended


def _ignore(results: Sequence[Any]) -> None:
    return None


_NOT_TRACED = nullcontext(("{", _ignore))


def start_run(queue: str, job_id: str, attempt: int, task: str | None, body: str) -> Any:
    """Start the span of a run, as a child of its add's if the body carries one, and make it
    current (the job's own spans are its children); None when not tracing."""
    found = tracer()
    if found is None:
        return None
    parent = propagate.extract(_carrier(body)) if body.startswith(TRACE_FIELD) else None
    attributes = {**_attributes(queue, job_id), "convoy.attempt": attempt}
    if task:
        attributes["convoy.task"] = task
    span = found.start_span(
        f"convoy run {task or queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    return span, otel_context.attach(trace.set_span_in_context(span))


def end_run(started: Any, outcome: str, error: BaseException | None) -> None:
    """End a run's span with its outcome (``done``, ``retry``, ``failed``)."""
    if started is None:
        return
    span, token = started
    span.set_attribute("convoy.outcome", outcome)
    if error is not None:
        span.record_exception(error)
        span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
    otel_context.detach(token)
    span.end()


def _carrier(body: str) -> dict[str, str]:
    """The trace carrier at the start of a body; empty if it is not one."""
    try:
        carrier, _ = json.JSONDecoder().raw_decode(body, len(TRACE_FIELD))
    except ValueError:
        return {}
    return carrier if isinstance(carrier, dict) else {}
