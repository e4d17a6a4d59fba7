"""The server's Prometheus metrics: the shared counters plus timings and gauges.

Served at ``/metrics``. Metric names are listed in docs/operations.md, "Metrics".
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
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
#: `relay_asyncio_tasks` is counted on one probe tick in this many (once a second): counting
#: walks every task, about 0.1 us each (2 ms a second at 20,000 tasks would be too much at
#: 20 wake-ups a second; 0.1 ms at once a second is not).
TASKS_EVERY_TICKS = 20
#: `relay_gc_objects` is counted at most this often, when /metrics is scraped: counting
#: walks every tracked object (about 20 ms per million on the 2-core machines), too slow
#: for every scrape. The start-up's objects are not in it (server/collector.py's
#: `made_since_start_up`): it counts what the server made since.
GC_OBJECTS_MAX_AGE_S = 10.0


def loop_lag_histogram(registry: CollectorRegistry) -> Histogram:
    """``relay_event_loop_lag_seconds`` in ``registry``, for :func:`probe_loop_lag` to feed."""
    return Histogram(
        "relay_event_loop_lag_seconds",
        "How late the event loop woke a timer: time it could not serve clients.",
        buckets=_LAG_BUCKETS,
        registry=registry,
    )


async def probe_loop_lag(histogram: Histogram, tasks: Gauge | None = None) -> None:
    """Runs for the server's life: sleep a fixed interval, record how late it woke; and, on
    one tick in TASKS_EVERY_TICKS, how many asyncio tasks the loop holds (into `tasks`)."""
    loop = asyncio.get_running_loop()
    ticks = 0
    while True:
        if tasks is not None and ticks % TASKS_EVERY_TICKS == 0:
            tasks.set(len(asyncio.all_tasks(loop)))
        ticks += 1
        started = loop.time()
        await asyncio.sleep(LAG_PROBE_INTERVAL_S)
        histogram.observe(max(0.0, loop.time() - started - LAG_PROBE_INTERVAL_S))


class GcObjectCount:
    """`count()` (by default len(gc.get_objects())), counted again only once the last count
    is `max_age_s` old: a gauge's read function, so that nothing is counted while nobody
    scrapes.

    Usage::

        gauge.set_function(GcObjectCount(collector.made_since_start_up))
    """

    def __init__(
        self,
        count: Callable[[], int] = lambda: len(gc.get_objects()),
        max_age_s: float = GC_OBJECTS_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count
        self.max_age_s = max_age_s
        self._clock = clock
        self._counted_at: float | None = None
        self._count = 0

    def __call__(self) -> float:
        now = self._clock()
        if self._counted_at is None or now - self._counted_at >= self.max_age_s:
            self._count = self.count()
            self._counted_at = now
        return float(self._count)


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
        self.asyncio_tasks = Gauge(
            "relay_asyncio_tasks",
            "asyncio tasks in the server's event loop (not done), counted once a second.",
            registry=self.registry,
        )
        self.gc_objects = Gauge(
            "relay_gc_objects",
            "Objects tracked by Python's garbage collector (not the start-up's), "
            f"counted at most every {GC_OBJECTS_MAX_AGE_S:g} s when scraped.",
            registry=self.registry,
        )
        self.gc_objects.set_function(GcObjectCount())

    def track(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)

    async def probe_loop_lag(self) -> None:
        await probe_loop_lag(self.loop_lag_seconds, self.asyncio_tasks)
