"""Runs the benchmark matrix: for each case a fresh stack, then stepped offered rates.

Per step: client processes connect (``bench.loadgen``), the producer offers a rate for a
while (``bench.producer``), the harness samples CPU, RSS and queue depth, waits for the
queue to drain, then collects the clients' histograms and the server's loop-lag probe
(``bench.measure`` reads each figure) into a :class:`~bench.results.StepResult`.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
from pydantic import BaseModel, Field

from bench.measure import (
    ResourceSampler,
    Roles,
    bucket_percentiles,
    cpu_seconds_by_role,
    lag_buckets,
    merge_histograms,
    queue_depth,
)
from bench.results import CaseResult, StepResult
from bench.stack import PYTHON, Case, Stack, harness_pinned

CLIENTS_PER_LOADGEN = 25
DRAIN_TIMEOUT_S = 5.0
#: After the drain, for the last emits in flight to reach the clients (a bound, not a signal).
SETTLE_S = 0.3
MAX_STEP_ERRORS = 10
#: Each step's sequence numbers start here times the step's index, so that a redelivery from
#: an earlier step (the naive recipe never deletes) is told apart from this step's events.
SEQ_STRIDE = 10_000_000


class ProducerReport(BaseModel):
    """The JSON line ``python -m bench.producer`` prints when it has offered its load."""

    sent: int = 0
    cpu_s: float = 0.0
    achieved_rate: float | None = None
    elapsed_s: float | None = None
    errors: list[str] = Field(default_factory=list)


class ClientReport(BaseModel):
    """The JSON line each ``python -m bench.loadgen`` prints when it is stopped."""

    unique: int
    duplicates: int
    stale: int = 0
    errors: list[str] = Field(default_factory=list)
    latency_hdr: str | None = None
    worker_latency_hdr: str | None = None
    ping_hdr: str | None = None


@dataclass(frozen=True)
class _Snapshot:
    """Each role's CPU seconds and the server's loop-lag histogram at one moment."""

    cpu_s: dict[str, float]
    lag_buckets: dict[float, float]

    @classmethod
    def take(cls, stack: Stack, roles: Roles) -> _Snapshot:
        return cls(cpu_seconds_by_role(roles), _try(lambda: lag_buckets(stack.url), {}))


def start_loadgens(stack: Stack, clients: int, *, seq_from: int) -> list[subprocess.Popen[bytes]]:
    """``clients`` clients, spread over processes so that the client side is not the
    bottleneck, once every one has connected; the first process also pings the server."""
    loadgens: list[subprocess.Popen[bytes]] = []
    remaining = clients
    while remaining > 0:
        n = min(CLIENTS_PER_LOADGEN, remaining)
        remaining -= n
        loadgens.append(
            subprocess.Popen(
                [PYTHON, "-m", "bench.loadgen", "--url", stack.url, "--clients", str(n),
                 "--ping-ms", "50" if not loadgens else "0", "--seq-from", str(seq_from)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=stack.log_dir,
                env=stack.env(),
            )
        )  # fmt: skip
    for loadgen in loadgens:
        assert loadgen.stdout is not None
        if loadgen.stdout.readline().strip() != b"ready":
            raise RuntimeError("a load generator failed to connect its clients")
    return loadgens


def offer_load(stack: Stack, rate: float, duration_s: float, *, seq_start: int) -> ProducerReport:
    """Run the producer at ``rate`` messages/s for ``duration_s``; its report."""
    producer = subprocess.Popen(
        [PYTHON, "-m", "bench.producer", "--endpoint", stack.endpoint, "--queue-url",
         stack.queue_url, "--rate", str(rate), "--duration", str(duration_s),
         "--seq-start", str(seq_start)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=stack.log_dir, env=stack.env(),
    )  # fmt: skip
    out, _ = producer.communicate(timeout=duration_s * 4 + 60)
    return ProducerReport.model_validate_json(out or b"{}")


def wait_for_drain(depth: Callable[[], int]) -> None:
    """Until the queue is empty, or DRAIN_TIMEOUT_S (a saturated step leaves a backlog), then
    SETTLE_S more."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and _try(depth, 1) > 0:
        time.sleep(0.1)  # polling the queue depth
    time.sleep(SETTLE_S)


def stop_loadgens(loadgens: list[subprocess.Popen[bytes]]) -> tuple[list[ClientReport], list[str]]:
    """Stop the client processes; the report each printed, and an error for each that did not."""
    reports: list[ClientReport] = []
    errors: list[str] = []
    for loadgen in loadgens:
        loadgen.terminate()
        out, _ = loadgen.communicate(timeout=30)
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if lines:
            reports.append(ClientReport.model_validate_json(lines[-1]))
        else:
            errors.append("a load generator returned no summary")
    return reports, errors


def _queue_depth_reader(stack: Stack) -> Callable[[], int]:
    sqs = boto3.session.Session(region_name="us-east-1").client(
        "sqs", endpoint_url=stack.endpoint, aws_access_key_id="b", aws_secret_access_key="b"
    )
    return functools.partial(queue_depth, sqs, stack.queue_url)


def run_step(
    stack: Stack, case: Case, rate: float, duration_s: float, index: int = 0
) -> StepResult:
    """Offer ``rate`` messages/s for ``duration_s`` to ``case``'s running ``stack``; ``index``
    is the step's place in the case's ramp."""
    seq_start = index * SEQ_STRIDE
    depth = _queue_depth_reader(stack)
    loadgens = start_loadgens(stack, case.clients, seq_from=seq_start)
    roles = {**stack.by_role(), "clients": [psutil.Process(p.pid) for p in loadgens]}
    before = _Snapshot.take(stack, roles)
    with ResourceSampler(roles, depth=depth) as sampler:
        produced = offer_load(stack, rate, duration_s, seq_start=seq_start)
        wait_for_drain(depth)
    after = _Snapshot.take(stack, roles)
    reports, errors = stop_loadgens(loadgens)
    errors += [error for report in reports for error in report.errors]
    errors += produced.errors
    exited = stack.exited()
    if exited:
        errors.append(f"exited during the step: {', '.join(exited)}")
    return _step_result(
        rate=rate,
        duration_s=duration_s,
        clients=case.clients,
        produced=produced,
        reports=reports,
        before=before,
        after=after,
        sampler=sampler,
        errors=errors,
    )


def _step_result(
    *,
    rate: float,
    duration_s: float,
    clients: int,
    produced: ProducerReport,
    reports: list[ClientReport],
    before: _Snapshot,
    after: _Snapshot,
    sampler: ResourceSampler,
    errors: list[str],
) -> StepResult:
    """The step's figures from what its processes reported and what was sampled."""
    delivered = sum(r.unique for r in reports) / clients if clients else 0  # per client
    cpu_s = {role: after.cpu_s[role] - before.cpu_s.get(role, 0) for role in after.cpu_s}
    cpu_s["producer"] = produced.cpu_s
    latency = merge_histograms(r.latency_hdr for r in reports)
    step = StepResult(
        offered_rate=rate,
        duration_s=duration_s,
        sent=produced.sent,
        achieved_send_rate=produced.achieved_rate,
        delivered=round(delivered, 1),
        delivered_rate=delivered / max(duration_s, produced.elapsed_s or duration_s),
        latency_ms=latency,
        worker_latency_ms=merge_histograms(r.worker_latency_hdr for r in reports),
        loop_lag_ms=bucket_percentiles(before.lag_buckets, after.lag_buckets),
        ping_rtt_ms=merge_histograms(r.ping_hdr for r in reports),
        cpu_s_per_1000={
            role: (seconds / delivered * 1000 if delivered else None)
            for role, seconds in cpu_s.items()
        },
        peak_rss_mb=sampler.peak_rss_mb,
        queue_depth_max=sampler.depth_max,
        duplicates=sum(r.duplicates for r in reports),
        stale_redeliveries=sum(r.stale for r in reports),
        errors=errors[:MAX_STEP_ERRORS],
    )
    return step.model_copy(update={"saturated": not step.meets_definition})


def _naive_notes(stack: Stack, steps: list[StepResult]) -> list[str]:
    """What the naive recipe did: the end of its server's log, and the redeliveries it let
    through since it never deletes."""
    notes = []
    for proc in stack.procs:
        if proc.role == "server" and proc.log.exists():
            tail = proc.log.read_text(errors="replace")[-400:].strip()
            if tail:
                notes.append(f"naive server log (end): {tail}")
    if steps:
        stale = sum(s.stale_redeliveries or 0 for s in steps)
        dups = sum(s.duplicates or 0 for s in steps)
        notes.append(
            f"it never deletes: {dups} repeated and {stale} stale (earlier steps') events reached "
            "clients as SQS redelivered them after the visibility timeout"
        )
    return notes


def run_case(
    case: Case,
    *,
    duration_s: float,
    log_dir: Path,
    delay_ms: float,
    keep_going: bool,
    on_step: Callable[[StepResult], None],
) -> CaseResult:
    """``case`` on a fresh stack, its rates in order until one saturates (all of them with
    ``keep_going``); ``on_step`` sees each step as it ends. A failure ends the case as a note."""
    stack = Stack(case, log_dir, delay_ms)
    steps: list[StepResult] = []
    notes: list[str] = []
    with harness_pinned(case.pinned):
        try:
            stack.start()
            for index, rate in enumerate(case.rates):
                step = run_step(stack, case, rate, duration_s, index)
                steps.append(step)
                on_step(step)
                if step.saturated and not keep_going:
                    break
        except Exception as exc:
            notes.append(f"case failed: {exc}")
        finally:
            stack.stop()
    if case.mode == "naive":
        notes += _naive_notes(stack, steps)
    return CaseResult(
        regime=case.group,
        pinned=case.pinned or None,
        mode=case.mode,
        consumers=case.consumers,
        clients=case.clients,
        backend=case.backend,
        label=case.label,
        steps=steps,
        max_sustained_rate=max((s.offered_rate for s in steps if not s.saturated), default=0),
        notes=notes,
    )


def _try(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception:
        return default
