"""How a step's figures are read off a running stack: the server's event-loop lag from its
``/metrics``, CPU time and peak memory per process role (psutil), the queue's depth (SQS),
and the clients' latency histograms merged (HdrHistogram)."""

from __future__ import annotations

import contextlib
import math
import threading
import urllib.request
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import percentiles
from bench.results import Percentiles

__all__ = [
    "ResourceSampler",
    "Roles",
    "bucket_percentiles",
    "cpu_seconds",
    "cpu_seconds_by_role",
    "lag_buckets",
    "merge_histograms",
    "queue_depth",
]

#: Process role ("server", "workers", "clients", ...) -> its processes.
Roles = dict[str, list[psutil.Process]]
SAMPLE_INTERVAL_S = 0.5


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


def bucket_percentiles(before: dict[float, float], after: dict[float, float]) -> Percentiles:
    """p50/p99 (ms) of the samples between two scrapes, interpolated within buckets; `max` is
    the upper bound of the highest bucket that got a sample. Empty when there was none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return Percentiles()

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
    return Percentiles(
        p50=at(0.50),
        p99=at(0.99),
        max=(highest if math.isfinite(highest) else bounds[-2] * 2) * 1000,
    )


def _summed(processes: Iterable[Any], *fields: str) -> float:
    """`fields` of the processes' `cpu_times()`, added up; gone ones count 0."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += sum(getattr(times, field) for field in fields)
        except Exception:
            pass  # gone
    return total


def cpu_seconds(processes: Iterable[Any]) -> float:
    """User and system CPU time of ``processes`` and their children; gone ones count 0."""
    return _summed(processes, "user", "system", "children_user", "children_system")


def system_cpu_seconds(processes: Iterable[Any]) -> float:
    """The kernel's share of :func:`cpu_seconds`: what the processes spent in system calls
    (on loopback, a send also runs the receiving side's TCP stack); gone ones count 0."""
    return _summed(processes, "system", "children_system")


def cpu_seconds_by_role(roles: Roles) -> dict[str, float]:
    return {role: cpu_seconds(processes) for role, processes in roles.items()}


def merge_histograms(encoded: Iterable[str | None]) -> Percentiles:
    """The percentiles of several clients' HdrHistograms together (their encoded form)."""
    merged: HdrHistogram | None = None
    for text in encoded:
        if not text:
            continue
        histogram = HdrHistogram.decode(text.encode())
        if merged is None:
            merged = histogram
        else:
            merged.add(histogram)
    summary = None if merged is None else percentiles(merged)
    return Percentiles() if summary is None else Percentiles.model_validate(summary)


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible or in flight."""
    values = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(
        values["ApproximateNumberOfMessagesNotVisible"]
    )


class ResourceSampler:
    """Samples each role's resident memory and the queue's depth in a thread, keeping peaks.

    ::

        with ResourceSampler(roles, depth=read_depth) as sampler:
            ...  # the load runs
        sampler.peak_rss_mb, sampler.depth_max
    """

    def __init__(self, roles: Roles, *, depth: Callable[[], int]) -> None:
        self._roles = roles
        self._depth = depth
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_rss_mb: dict[str, float] = {}
        self.depth_max = 0

    def __enter__(self) -> ResourceSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, processes in self._roles.items():
                rss = 0.0
                for process in processes:
                    with contextlib.suppress(Exception):
                        rss += process.memory_info().rss
                self.peak_rss_mb[role] = max(self.peak_rss_mb.get(role, 0.0), rss / 2**20)
            with contextlib.suppress(Exception):  # a missed sample, not a failed step
                self.depth_max = max(self.depth_max, self._depth())
            self._stop.wait(SAMPLE_INTERVAL_S)
