"""Prometheus exposition of :class:`~shared.counters.Counters` (prometheus-client)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.counters import DOCS, LABELLED, Counters


class CountersCollector(Collector):
    """Reads the counters at scrape time; each becomes ``relay_<name>_total``."""

    def __init__(self, counters: Counters, names: tuple[str, ...]) -> None:
        self._counters = counters
        self._names = names

    def collect(self) -> Iterator[Metric]:
        values = self._counters.snapshot()
        for name in self._names:
            labelled = name in LABELLED
            family = CounterMetricFamily(
                f"relay_{name}", DOCS[name], labels=["reason"] if labelled else None
            )
            moved = {reason: v for (n, reason), v in values.items() if n == name}
            if labelled:
                for reason, value in sorted(moved.items()):
                    family.add_metric([reason], value)
            else:
                family.add_metric([], moved.get("", 0))
            yield family


def registry_for(counters: Counters, names: tuple[str, ...]) -> CollectorRegistry:
    """A registry of its own per process (not the global one), holding `names`."""
    registry = CollectorRegistry()
    registry.register(CountersCollector(counters, names))
    return registry
