"""Spans of this process, kept by the OpenTelemetry SDK's in-memory exporter and written as JSON
lines to $CONVOY_TEST_SPANS when the process exits (tests/settings.py imports this when it is
set), so that a test can read the spans of a producer and of a worker process."""

import atexit
import json
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


@atexit.register
def _write() -> None:
    with open(os.environ["CONVOY_TEST_SPANS"], "w") as out:
        for span in exporter.get_finished_spans():
            record = {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "parent_id": span.parent and f"{span.parent.span_id:016x}",
                "attributes": dict(span.attributes),
                "status": span.status.status_code.name,
            }
            out.write(json.dumps(record) + "\n")
