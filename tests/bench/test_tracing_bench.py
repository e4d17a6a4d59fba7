"""`python -m bench tracing` (bench/tracing.py): the harness runs and records figures, its sink
counts without decoding, and its ratios pair each run with `before`'s run of the same round.
No timing is asserted: what traces cost is measured in bench/, never in a test."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.results import Percentiles, StepResult
from bench.tracing import (
    OtlpSink,
    TracedStep,
    TracingResults,
    TracingRun,
    span_starts,
    summarise,
)
from tests.processes import PYTHON, ROOT


@pytest.mark.timeout(180)
def test_two_cases_one_round_give_cpu_latency_and_counted_spans(tmp_path: Path) -> None:
    # Given: traces off and traces on at 100%, one round, a tiny rate for a second
    result = subprocess.run(
        [PYTHON, "-m", "bench", "tracing", "--cases", "off,on-100%", "--reps", "1",
         "--rates", "40", "--duration", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    # Then: every run measured its step, and only the traced one exported spans
    assert result.returncode == 0, result.stderr[-3000:]
    results = TracingResults.load(tmp_path / "tracing.json")  # the file fits the models
    assert [(run.case, run.rep) for run in results.runs] == [("off", 1), ("on-100%", 1)]
    for run in results.runs:
        assert run.notes == [], run.notes
        [traced] = run.steps
        step = traced.step
        assert step.sent and step.delivered, (run.case, step.errors)
        assert step.latency_ms.p99 is not None
        assert step.cpu_s_per_1000["workers"] is not None
        assert step.cpu_s_per_1000["server"] is not None
    off, on = results.runs
    assert off.sink_requests == 0 and off.steps[0].spans is None
    assert on.sink_requests and on.sink_bytes
    spans = on.steps[0].spans
    assert spans is not None
    assert spans.get("sqs-relay-worker", 0) > 0 and spans.get("sqs-relay-server", 0) > 0
    # And: the summary and the report name both cases
    assert {row.case for row in results.summary} == {"off", "on-100%"}
    report = (tmp_path / "tracing.md").read_text()
    assert "| off | 40 |" in report and "| on-100% | 40 |" in report


def test_the_sink_answers_200_empty_and_counts_requests_and_bytes() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add()
    attribute = spans.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "svc"
    span = spans.scope_spans.add().spans.add()
    span.name, span.start_time_unix_nano = "receive", 1_000
    body = request.SerializeToString()
    with OtlpSink() as sink:
        # When: an exporter posts the same request twice
        for _ in range(2):
            post = urllib.request.Request(
                sink.endpoint, data=body, headers={"Content-Type": "application/x-protobuf"}
            )
            with urllib.request.urlopen(post, timeout=5) as response:
                # Then: 200 with an empty body, as OTLP/HTTP allows
                assert response.status == 200
                assert response.read() == b""
        requests, size, bodies = sink.take()
        # And: it counted both, kept the bytes as they came, and starts afresh after a take
        assert (requests, size) == (2, 2 * len(body))
        assert sink.take()[:2] == (0, 0)
    assert span_starts(bodies) == [("svc", 1_000), ("svc", 1_000)]


def _run(case: str, rep: int, worker_s_per_1000: float) -> TracingRun:
    step = StepResult(
        offered_rate=500,
        duration_s=10,
        sent=5000,
        delivered=5000,
        latency_ms=Percentiles(p50=5, p99=20),
        cpu_s_per_1000={"workers": worker_s_per_1000, "server": 0.5},
    )
    return TracingRun(
        case=case,
        rep=rep,
        load_before=(1.0, 1.0, 1.0),
        load_after=(1.0, 1.0, 1.0),
        steps=[TracedStep(window_start=0, window_end=1, step=step)],
    )


def test_ratios_pair_each_run_with_the_before_run_of_its_round() -> None:
    # Given: the machine twice as slow in round 2, for both cases alike
    runs = [
        _run("before", 1, 0.4), _run("off", 1, 0.44),
        _run("before", 2, 0.8), _run("off", 2, 0.8),
        _run("before", 3, 0.5), _run("off", 3, 0.55),
    ]  # fmt: skip
    # When
    before, off = summarise(runs, ["before", "off"], [500])
    # Then: off's ratios are 1.1, 1.0 and 1.1 (paired), not off's median over before's median
    worker = off.figures["worker_us"]
    assert worker.median == pytest.approx(550)  # µs per message
    assert (worker.ratio, worker.ratio_min, worker.ratio_max) == pytest.approx((1.1, 1.0, 1.1))
    # And: before's row is its noise floor, every run against every other one
    floor = before.figures["worker_us"]
    assert (floor.ratio_min, floor.ratio_max) == pytest.approx((0.5, 2.0))
