"""`python -m bench.loadgen`: C Socket.IO clients in one process, recording what arrives.

Run by the harness, one or more per step, so the client side is not the bottleneck and its
CPU is measured apart. Prints ``ready`` on stdout once every client is connected, records
until SIGTERM, then prints one JSON summary line and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any

import socketio
from hdrh.histogram import HdrHistogram

_MAX_US = 120_000_000  # latencies above 2 minutes are clipped


def histogram() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)


class Recorder:
    """Receive times of every bench event, per client, into HdrHistograms (microseconds)."""

    def __init__(self, seq_from: int = 0) -> None:
        self.seq_from = seq_from
        self.stale = 0  # events of an earlier step, redelivered (a design that never deletes)
        self.latency = histogram()  # producer send -> client receive
        self.worker_latency = histogram()  # worker receive -> client receive
        self.ping = histogram()
        self.received = 0
        self.duplicates = 0
        self.seen: list[set[int]] = []
        self.errors: list[str] = []

    def record(self, client: int, payload: Any) -> None:
        now = time.time()
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or "seq" not in data:
            return
        self.received += 1
        if data["seq"] < self.seq_from:
            self.stale += 1
            return
        if data["seq"] in self.seen[client]:
            self.duplicates += 1
            return
        self.seen[client].add(data["seq"])
        self.latency.record_value(min(_MAX_US, max(1, int((now - data["t"]) * 1e6))))
        received_ms = payload.get("received_ms")
        if isinstance(received_ms, int | float):
            self.worker_latency.record_value(
                min(_MAX_US, max(1, int((now - received_ms / 1000) * 1e6)))
            )


def percentiles(h: HdrHistogram) -> dict[str, float] | None:
    if h.get_total_count() == 0:
        return None
    return {
        "p50": h.get_value_at_percentile(50) / 1000,
        "p95": h.get_value_at_percentile(95) / 1000,
        "p99": h.get_value_at_percentile(99) / 1000,
        "max": h.get_max_value() / 1000,
        "count": h.get_total_count(),
    }


async def run(
    url: str, clients: int, auth: dict[str, Any] | None, ping_ms: float, seq_from: int = 0
) -> dict[str, Any]:
    recorder = Recorder(seq_from)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sios = []
    for n in range(clients):
        sio = socketio.AsyncClient(reconnection=False)
        recorder.seen.append(set())

        async def on_any(event: str, payload: Any = None, n: int = n) -> None:
            recorder.record(n, payload)

        sio.on("*", handler=on_any)
        await sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=30)
        sios.append(sio)
    print("ready", flush=True)

    async def pinger() -> None:
        # A round trip through the server's event loop: how responsive it is under load.
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await sios[0].call("ping", None, timeout=10)
                recorder.ping.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
            except Exception as exc:  # a timeout under overload is a finding, not a crash
                recorder.errors.append(f"ping: {exc!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ping_ms / 1000)

    task = asyncio.create_task(pinger()) if ping_ms > 0 else None
    await stop.wait()
    if task is not None:
        await task
    for sio in sios:
        await sio.disconnect()
    unique = sum(len(s) for s in recorder.seen)

    def encoded(h: HdrHistogram) -> str | None:
        return h.encode().decode() if h.get_total_count() else None

    return {
        "latency_hdr": encoded(recorder.latency),
        "worker_latency_hdr": encoded(recorder.worker_latency),
        "ping_hdr": encoded(recorder.ping),
        "clients": clients,
        "received": recorder.received,
        "unique": unique,
        "duplicates": recorder.duplicates,
        "stale": recorder.stale,
        "latency_ms": percentiles(recorder.latency),
        "worker_latency_ms": percentiles(recorder.worker_latency),
        "ping_rtt_ms": percentiles(recorder.ping),
        "errors": recorder.errors[:20],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--token", help="JWT for the auth payload (servers with AUTH=jwt)")
    parser.add_argument("--ping-ms", type=float, default=50, help="ping interval; 0: no pings")
    parser.add_argument("--seq-from", type=int, default=0, help="older sequence numbers are stale")
    args = parser.parse_args(argv)
    auth = {"token": args.token} if args.token else None
    summary = asyncio.run(run(args.url, args.clients, auth, args.ping_ms, args.seq_from))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
