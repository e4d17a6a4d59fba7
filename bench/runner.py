"""Runs the benchmark matrix: for each case a fresh stack, then stepped offered rates.

Per step: client processes connect (``bench.loadgen``), the producer offers a rate for a
while (``bench.producer``), the harness samples CPU, RSS and queue depth, waits for the
queue to drain, then collects the clients' histograms and the server's loop-lag probe.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import percentiles
from bench.stack import PYTHON, Case, Stack

CLIENTS_PER_LOADGEN = 25
DRAIN_TIMEOUT_S = 5.0
SATURATED_P99_MS = 1000.0


def lag_buckets(url: str) -> dict[float, float]:
    """Cumulative bucket counts of the server's event-loop lag histogram."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "relay_event_loop_lag_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets


def bucket_percentiles(
    before: dict[float, float], after: dict[float, float]
) -> dict[str, float] | None:
    """p50/p99 (ms) of the samples between two scrapes, interpolated within buckets; `max` is
    the upper bound of the highest bucket that got a sample."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None

    def at(q: float) -> float:
        target, lower, below = q * total, 0.0, 0.0
        for bound, cumulative in zip(bounds, counts, strict=True):
            if cumulative >= target:
                upper = bound if math.isfinite(bound) else lower * 2 or 1.0
                share = (target - below) / (cumulative - below) if cumulative > below else 1
                return (lower + (upper - lower) * share) * 1000
            lower, below = bound, cumulative
        return lower * 1000

    highest = next(
        b for b, c, p in zip(bounds, counts, [0.0, *counts], strict=False) if c > p and c == total
    )
    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "max": (highest if math.isfinite(highest) else bounds[-2] * 2) * 1000,
    }


def cpu_seconds(processes: list[Any]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except Exception:
            pass  # gone
    return total


def merge(summaries: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    merged: HdrHistogram | None = None
    for summary in summaries:
        encoded = summary.get(f"{key}_hdr")
        if not encoded:
            continue
        histogram = HdrHistogram.decode(encoded.encode())
        if merged is None:
            merged = histogram
        else:
            merged.add(histogram)
    return None if merged is None else percentiles(merged)


def queue_depth(sqs: Any, queue_url: str) -> int:
    values = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(
        values["ApproximateNumberOfMessagesNotVisible"]
    )


#: Each step's sequence numbers start here times the step's index, so that a redelivery from
#: an earlier step (the naive recipe never deletes) is told apart from this step's events.
SEQ_STRIDE = 10_000_000


def run_step(
    stack: Stack, case: Case, rate: float, duration_s: float, index: int = 0
) -> dict[str, Any]:
    import psutil

    sqs = boto3.session.Session(region_name="us-east-1").client(
        "sqs", endpoint_url=stack.endpoint, aws_access_key_id="b", aws_secret_access_key="b"
    )
    errors: list[str] = []
    # clients, spread over processes so the client side is not the bottleneck
    loadgens = []
    remaining = case.clients
    while remaining > 0:
        n = min(CLIENTS_PER_LOADGEN, remaining)
        remaining -= n
        loadgens.append(
            subprocess.Popen(
                [PYTHON, "-m", "bench.loadgen", "--url", stack.url, "--clients", str(n),
                 "--ping-ms", "50" if not loadgens else "0", "--seq-from", str(index * SEQ_STRIDE)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=stack.log_dir,
                env=stack.env(),
            )
        )  # fmt: skip
    for loadgen in loadgens:
        assert loadgen.stdout is not None
        if loadgen.stdout.readline().strip() != b"ready":
            raise RuntimeError("a load generator failed to connect its clients")
    roles = stack.by_role()
    roles["clients"] = [psutil.Process(p.pid) for p in loadgens]
    cpu_before = {role: cpu_seconds(ps) for role, ps in roles.items()}
    lag_before = _try(lambda: lag_buckets(stack.url), {})

    producer = subprocess.Popen(
        [PYTHON, "-m", "bench.producer", "--endpoint", stack.endpoint, "--queue-url",
         stack.queue_url, "--rate", str(rate), "--duration", str(duration_s),
         "--seq-start", str(index * SEQ_STRIDE)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=stack.log_dir, env=stack.env(),
    )  # fmt: skip
    peak_rss: dict[str, float] = {}
    depth_max = 0
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal depth_max
        while not stop_sampling.is_set():
            for role, processes in roles.items():
                rss = 0.0
                for process in processes:
                    with contextlib.suppress(Exception):
                        rss += process.memory_info().rss
                peak_rss[role] = max(peak_rss.get(role, 0.0), rss / 2**20)
            depth_max = max(depth_max, _try(lambda: queue_depth(sqs, stack.queue_url), 0))
            stop_sampling.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    produced_out, _ = producer.communicate(timeout=duration_s * 4 + 60)
    produced = json.loads(produced_out or b"{}")
    # drain: until the queue is empty (or give up: a saturated step leaves a backlog)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and _try(lambda: queue_depth(sqs, stack.queue_url), 1) > 0:
        time.sleep(0.1)  # polling the queue depth
    time.sleep(0.3)  # the last emits in flight reach the clients (bounded, not synchronisation)
    stop_sampling.set()
    sampler.join()
    cpu_after = {role: cpu_seconds(ps) for role, ps in roles.items()}
    lag_after = _try(lambda: lag_buckets(stack.url), {})
    summaries = []
    for loadgen in loadgens:
        loadgen.terminate()
        out, _ = loadgen.communicate(timeout=30)
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if lines:
            summaries.append(json.loads(lines[-1]))
        else:
            errors.append("a load generator returned no summary")

    sent = int(produced.get("sent", 0))
    unique = sum(s["unique"] for s in summaries)
    delivered = unique / case.clients if case.clients else 0  # distinct messages per client
    duplicates = sum(s["duplicates"] for s in summaries)
    stale = sum(s.get("stale", 0) for s in summaries)
    cpu = {role: cpu_after.get(role, 0) - cpu_before.get(role, 0) for role in cpu_after}
    cpu["producer"] = float(produced.get("cpu_s", 0.0))
    per_1000 = {role: (v / delivered * 1000 if delivered else None) for role, v in cpu.items()}
    latency = merge(summaries, "latency")
    for summary in summaries:
        errors += summary.get("errors", [])
    errors += produced.get("errors", [])
    dead = stack.alive()
    if dead:
        errors.append(f"exited during the step: {', '.join(dead)}")
    saturated = (
        sent == 0 or delivered < 0.9 * sent or latency is None or latency["p99"] > SATURATED_P99_MS
    )
    return {
        "offered_rate": rate,
        "duration_s": duration_s,
        "sent": sent,
        "achieved_send_rate": produced.get("achieved_rate"),
        "delivered": round(delivered, 1),
        "delivered_rate": delivered / max(duration_s, produced.get("elapsed_s", duration_s)),
        "latency_ms": latency,
        "worker_latency_ms": merge(summaries, "worker_latency"),
        "loop_lag_ms": bucket_percentiles(lag_before, lag_after) if lag_after else None,
        "ping_rtt_ms": merge(summaries, "ping"),
        "cpu_s_per_1000": per_1000,
        "peak_rss_mb": peak_rss,
        "queue_depth_max": depth_max,
        "duplicates": duplicates,
        "stale_redeliveries": stale,
        "errors": errors[:10],
        "saturated": saturated,
    }


def run_case(
    case: Case,
    *,
    duration_s: float,
    log_dir: Path,
    delay_ms: float,
    keep_going: bool,
    on_step: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    stack = Stack(case, log_dir, delay_ms)
    steps: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        stack.start()
        for index, rate in enumerate(case.rates):
            step = run_step(stack, case, rate, duration_s, index)
            steps.append(step)
            on_step(step)
            if step["saturated"] and not keep_going:
                break
    except Exception as exc:
        notes.append(f"case failed: {exc}")
    finally:
        stack.stop()
    for proc in stack.procs:
        tail = proc.log.read_text(errors="replace")[-400:].strip() if proc.log.exists() else ""
        if case.mode == "naive" and proc.role == "server" and tail:
            notes.append(f"naive server log (end): {tail}")
    if case.mode == "naive" and steps:
        stale = sum(s.get("stale_redeliveries", 0) for s in steps)
        dups = sum(s.get("duplicates", 0) for s in steps)
        notes.append(
            f"it never deletes: {dups} repeated and {stale} stale (earlier steps') events reached "
            "clients as SQS redelivered them after the visibility timeout"
        )
    ok = [s["offered_rate"] for s in steps if not s["saturated"]]
    return {
        "regime": case.regime,
        "mode": case.mode,
        "consumers": case.consumers,
        "clients": case.clients,
        "backend": case.backend,
        "label": case.label,
        "steps": steps,
        "max_sustained_rate": max(ok) if ok else 0,
        "notes": notes,
    }


def _try(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception:
        return default
