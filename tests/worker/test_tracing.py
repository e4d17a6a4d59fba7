"""The worker's spans of a batch (worker/tracing.py), with the SDK in this process and an
in-memory exporter; the consumer runs against the fake SQS of test_consumer.py. The spans
across real processes are tests/integration/test_tracing.py's."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler

from shared.counters import Counters
from shared.settings import load_settings
from shared.tracing import Tracing
from tests.worker.test_consumer import FakeHandoff, FakeSqs, message
from worker.consumer import Worker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def run_traced(
    batches: list[list[dict[str, Any]]],
    handoff: FakeHandoff,
    exporter: InMemorySpanExporter,
    env: dict[str, str] | None = None,
    sampler: Sampler | None = None,
) -> tuple[Worker, FakeSqs, list[ReadableSpan]]:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = threading.Event()
    sqs = FakeSqs(batches, stop)
    worker = Worker(
        counters=Counters(),
        settings=load_settings(env or {}),
        sqs=sqs,  # type: ignore[arg-type]
        handoff=handoff,  # type: ignore[arg-type]
        stop=stop,
        tracing=Tracing(provider, "test"),
    )
    worker.run()
    return worker, sqs, list(exporter.get_finished_spans())


def traced(n: int, **attributes: str) -> dict[str, Any]:
    m = message(n)
    m["MessageAttributes"] = {
        k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
    }
    return m


def by_message(spans: list[ReadableSpan]) -> dict[str, dict[str, ReadableSpan]]:
    """{MessageId: {span name: span}} through each receive span."""
    receives = {s.context.span_id: s for s in spans if s.name == "receive"}
    found: dict[str, dict[str, ReadableSpan]] = {}
    for receive in receives.values():
        mid = str(receive.attributes["messaging.message.id"])  # type: ignore[index]
        found[mid] = {"receive": receive}
        for s in spans:
            if s.parent is not None and s.parent.span_id == receive.context.span_id:
                found[mid][s.name] = s
    return found


def test_a_traceparent_attribute_is_continued_and_each_step_is_a_child_of_receive(
    exported: InMemorySpanExporter,
) -> None:
    # Given a message carrying a caller's traceparent and one carrying none
    parent = f"00-{TRACE_ID}-{PARENT}-01"
    batch = [traced(0, traceparent=parent), message(1)]

    # When the worker handles the batch and the server confirms both
    handoff = FakeHandoff()
    _worker, sqs, spans = run_traced([batch], handoff, exported)

    # Then the first message's receive continues the caller's trace, the second starts one
    steps = by_message(spans)
    first, second = steps["m0"], steps["m1"]
    assert f"{first['receive'].context.trace_id:032x}" == TRACE_ID
    assert f"{first['receive'].parent.span_id:016x}" == PARENT  # type: ignore[union-attr]
    assert second["receive"].parent is None
    assert second["receive"].context.trace_id != first["receive"].context.trace_id

    # And each has decode, hand-off and delete under its receive, its outcome delivered
    for mid in ("m0", "m1"):
        assert set(steps[mid]) == {"receive", "decode", "hand-off", "delete"}, mid
        assert steps[mid]["receive"].attributes["sqs_relay.outcome"] == "delivered"  # type: ignore[index]
    assert sqs.deleted == ["r0", "r1"]

    # And the hand-off's context went to the server on the delivery, naming the hand-off span
    [d0, d1] = handoff.batches[0]
    hand_off = first["hand-off"]
    assert d0.trace is not None and d1.trace is not None
    assert d0.trace["traceparent"] == (f"00-{TRACE_ID}-{hand_off.context.span_id:016x}-01")


def test_an_aws_trace_header_is_continued_when_there_is_no_traceparent(
    exported: InMemorySpanExporter,
) -> None:
    # Given a message that SQS gave X-Ray's header (a sender traced with X-Ray)
    m = message(0)
    m["Attributes"]["AWSTraceHeader"] = (
        f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={PARENT};Sampled=1"
    )

    # When the worker handles it
    _worker, _sqs, spans = run_traced([[m]], FakeHandoff(), exported)

    # Then its receive continues that trace
    receive = by_message(spans)["m0"]["receive"]
    assert f"{receive.context.trace_id:032x}" == TRACE_ID
    assert f"{receive.parent.span_id:016x}" == PARENT  # type: ignore[union-attr]


def test_unconfirmed_and_held_messages_end_in_a_return_span_with_their_outcome(
    exported: InMemorySpanExporter,
) -> None:
    # Given a FIFO batch in which the server refuses a group's first message
    env = {"SQS_QUEUE_URL": "http://127.0.0.1:9324/123456789012/events.fifo"}
    batch = []
    for n in range(3):
        m = message(n)
        m["Attributes"]["MessageGroupId"] = "g"
        batch.append(m)

    # When the worker handles it
    _worker, sqs, spans = run_traced(
        [batch], FakeHandoff(refuse=frozenset({"m0"})), exported, env=env
    )

    # Then all three go back, each with a return span; the refused one says it was not
    # confirmed, the later ones that they were returned behind it
    assert sqs.released == ["r0", "r1", "r2"]
    steps = by_message(spans)
    for mid in ("m0", "m1", "m2"):
        assert "return" in steps[mid], mid
        assert steps[mid]["receive"].attributes["sqs_relay.outcome"] == "returned"  # type: ignore[index]
    assert steps["m0"]["hand-off"].attributes["sqs_relay.confirmed"] is False  # type: ignore[index]
    assert steps["m1"]["hand-off"].attributes["sqs_relay.confirmed"] is True  # type: ignore[index]


def test_a_message_left_out_by_the_sampler_gets_no_span_and_no_context_on_the_wire(
    exported: InMemorySpanExporter,
) -> None:
    # Given a sampler that samples nothing, and a message with a caller's (sampled) context
    batch = [traced(0, traceparent=f"00-{TRACE_ID}-{PARENT}-00"), message(1)]

    # When the worker handles the batch
    handoff = FakeHandoff()
    _worker, sqs, spans = run_traced([batch], handoff, exported, sampler=ALWAYS_OFF)

    # Then it is delivered as usual, with no span and no trace context for the server
    assert sqs.deleted == ["r0", "r1"]
    assert spans == []
    assert [d.trace for d in handoff.batches[0]] == [None, None]


def loaded_after(imports: str) -> list[str]:
    """The OpenTelemetry modules a fresh interpreter holds after `imports` and asking for
    traces with the default settings."""
    code = (
        f"import sys, {imports}\n"
        "from shared.settings import load_settings\n"
        "from shared.tracing import start_tracing\n"
        "assert start_tracing(load_settings({}), 'x') is None\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_with_traces_off_no_process_imports_the_opentelemetry_sdk() -> None:
    # Given traces off (the default), when a worker's and the producer's modules load, then
    # nothing of OpenTelemetry is loaded
    assert loaded_after("worker.__main__, producer.__main__, producer.publish") == []

    # And the server's load neither the tracer, the exporter nor the propagators (redis-py,
    # which the server imports, loads OpenTelemetry's metrics API when it is installed)
    loaded = loaded_after("server.relay, server.__main__")
    ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.propagat")
    assert [m for m in loaded if m.startswith(ours)] == []
