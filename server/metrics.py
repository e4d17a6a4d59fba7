"""The server's Prometheus metrics: the shared counters plus timings and gauges.

Served at ``/metrics``. Metric names are listed in docs/operations.md, "Metrics".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from shared.counters import SERVER_NAMES, Counters
from shared.metrics import registry_for

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
_LAG_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1,
)  # fmt: skip
#: 20 wake-ups a second: enough samples for a p99 over a few seconds, negligible CPU.
LAG_PROBE_INTERVAL_S = 0.05


def loop_lag_histogram(registry: CollectorRegistry) -> Histogram:
    """``relay_event_loop_lag_seconds`` in ``registry``, for :func:`probe_loop_lag` to feed."""
    return Histogram(
        "relay_event_loop_lag_seconds",
        "How late the event loop woke a timer: time it could not serve clients.",
        buckets=_LAG_BUCKETS,
        registry=registry,
    )


async def probe_loop_lag(histogram: Histogram) -> None:
    """Runs for the server's life: sleep a fixed interval, record how late it woke."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(LAG_PROBE_INTERVAL_S)
        histogram.observe(max(0.0, loop.time() - started - LAG_PROBE_INTERVAL_S))


class ServerMetrics:
    """Everything `/metrics` shows for one server process."""

    def __init__(self, counters: Counters, names: tuple[str, ...] = SERVER_NAMES) -> None:
        self.registry = registry_for(counters, names)
        self.emit_seconds = Histogram(
            "relay_emit_seconds",
            "Time python-socketio took to emit one event to its clients.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.end_to_end_seconds = Histogram(
            "relay_end_to_end_seconds",
            "From SQS accepting a message (SentTimestamp) to the server emitting it.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag_seconds = loop_lag_histogram(self.registry)
        self.connected_clients = Gauge(
            "relay_connected_clients",
            "Socket.IO connections (per namespace joined).",
            registry=self.registry,
        )
        self.workers_connected = Gauge(
            "relay_workers_connected",
            "ZeroMQ connections from workers to this server.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "relay_handoff_batch_messages",
            "Messages per ZeroMQ hand-off batch received from workers.",
            buckets=(1, 2, 5, 10, 20, 50, 100),
            registry=self.registry,
        )

    def track(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)

    async def probe_loop_lag(self) -> None:
        await probe_loop_lag(self.loop_lag_seconds)
