"""`python -m bench.cluster`: several server processes behind nginx, sharing Redis.

For each mode and each number of server processes (--servers, default 1, 2 and 4), on a fresh
stack: the fast SQS back end, redis-server (append-only, an fsync per write, as the manual
asks for cluster mode), the servers, each reaching Redis through a TCP forwarder of its own
that can be cut (devtools/netcut.py), nginx in front (devtools/balancer.py), two consumers,
and the reference JS client in Node (bench/loadgen.mjs), spread by nginx over the servers.

Modes: ``relay`` is this project's cluster mode (REDIS_URL: workers hand each batch to one
server, which appends it to Redis Streams; every server emits from the shared feed);
``redis-manager`` is python-socketio's own answer for several servers, `AsyncRedisManager`
(Redis pub/sub), fed by the same blocking boto3 consumer emitting through
`socketio.RedisManager` (bench/variants.py).

Per case, after a warm-up at the first rate (--warmup seconds, not counted: the clients' first
events pay for connections settling and the first emits, which set a higher p99 than any
later step's), broadcasts at a rising number of deliveries per second (messages/s x clients) until
a step is not sustained (p99 over 100 ms or under 99 % delivered); then one more step at the
first rate during which the first server's connection to Redis is cut for --drop seconds:
what its clients lost, and the p99 that step had.

Writes cluster.json and cluster.md to --out, and prints a line per step.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.measure import cpu_seconds
from bench.results import SUSTAINED_DELIVERED, SUSTAINED_P99_MS, Percentiles, RunMeta
from bench.runner import SEQ_STRIDE, _queue_depth_reader, offer_load, wait_for_drain
from bench.scale import Loadgens, histogram, start_run
from bench.stack import (
    PYTHON,
    QUEUE,
    READY_TIMEOUT_S,
    Case,
    Proc,
    Stack,
    _http_ok,
    _redis_up,
    _workers_connected,
    free_port,
)

SERVERS = [1, 2, 4]
MODES = ["relay", "redis-manager"]
DELIVERIES = [500, 1_000, 2_500, 5_000, 10_000]
CONSUMERS = 2
_MODEL = ConfigDict(extra="forbid", frozen=True)


class ClusterStep(BaseModel):
    model_config = _MODEL

    deliveries_offered: float
    rate: float  # broadcasts/s
    sent: int
    deliveries: int  # distinct (message, client) pairs received
    lost: int  # expected deliveries that never arrived
    delivered_share: float
    deliveries_per_s: float
    latency_ms: Percentiles  # producer's send -> client's receive
    servers_cpu_s: float
    us_per_delivery: float | None  # every server process's CPU together
    redis_cut_s: float = 0.0  # the first server's Redis connection was cut this long
    saturated: bool


class ClusterCase(BaseModel):
    model_config = _MODEL

    mode: str
    servers: int
    clients: int
    connected: int = 0
    steps: list[ClusterStep] = Field(default_factory=list)
    drop: ClusterStep | None = None
    max_sustained_deliveries: float = 0
    notes: list[str] = Field(default_factory=list)


class ClusterResults(BaseModel):
    model_config = _MODEL

    meta: RunMeta
    cases: list[ClusterCase]


@dataclass
class ClusterStack(Stack):
    """A bench Stack whose `url` is nginx's, in front of `servers` server processes."""

    servers: int = 1
    cuts: list[Proc] = field(default_factory=list)

    def start(self) -> None:
        mode = self.case.mode
        sqs = self.spawn(
            "sqs", "fakesqs",
            [PYTHON, "-m", "bench.fakesqs", "--port", str(self.sqs_port), "--queue", QUEUE],
        )  # fmt: skip
        sqs.process.wait_ready(lambda: "ready" in sqs.log.read_text(), what="fake SQS")
        data = (self.log_dir / f"redis-{self.redis_port}").resolve()
        data.mkdir(exist_ok=True)
        redis = self.spawn(
            "broker", "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(data), "--appendonly", "yes", "--appendfsync", "always"],
        )  # fmt: skip
        redis.process.wait_ready(lambda: _redis_up(self.redis_port), what="redis-server")
        direct = f"redis://127.0.0.1:{self.redis_port}/0"
        http_ports, zmq_ports = [], []
        for n in range(self.servers):
            cut_port, http_port, zmq_port = free_port(), free_port(), free_port()
            cut = self.spawn(
                "netcut", f"netcut{n}",
                [PYTHON, "-m", "devtools.netcut", "--target", str(self.redis_port),
                 "--port", str(cut_port)],
            )  # fmt: skip
            cut.process.wait_ready(lambda c=cut: "ready" in c.log.read_text(), what="netcut")
            self.cuts.append(cut)
            via = f"redis://127.0.0.1:{cut_port}/0"
            env = {"PORT": str(http_port), "ZMQ_BIND": f"tcp://127.0.0.1:{zmq_port}"}
            if mode == "relay":
                argv = [PYTHON, "-m", "server"]
                env["REDIS_URL"] = via
            else:
                argv = [PYTHON, "-m", "bench.variants", "redis-server", "--redis-url", via]
            server = self.spawn("server", f"server{n}", argv, **env)
            server.process.wait_ready(
                lambda p=http_port: _http_ok(f"http://127.0.0.1:{p}/healthz"),
                what=f"server {n}",
                timeout_s=READY_TIMEOUT_S,
            )
            http_ports.append(http_port)
            zmq_ports.append(zmq_port)
        upstreams = ",".join(f"127.0.0.1:{p}" for p in http_ports)
        nginx_dir = (self.log_dir / f"nginx-{self.http_port}").resolve()
        nginx = self.spawn(
            "balancer", "nginx",
            [PYTHON, "-m", "devtools.balancer", "--listen", f"127.0.0.1:{self.http_port}",
             "--servers", upstreams, "--dir", str(nginx_dir)],
        )  # fmt: skip
        nginx.process.wait_ready(lambda: _http_ok(f"{self.url}/healthz"), what="nginx")
        endpoints = ",".join(f"tcp://127.0.0.1:{p}" for p in zmq_ports)
        for n in range(CONSUMERS):
            if mode == "relay":
                self.spawn(
                    "workers", f"worker{n}", [PYTHON, "-m", "worker"],
                    ZMQ_CONNECT=endpoints, REDIS_URL=direct,
                )  # fmt: skip
            else:
                self.spawn(
                    "workers", f"redis-worker{n}",
                    [PYTHON, "-m", "bench.variants", "redis-worker", "--redis-url", direct],
                )  # fmt: skip
        if mode == "relay":
            first = f"http://127.0.0.1:{http_ports[0]}"
            server.process.wait_ready(
                lambda: _workers_connected(first) >= CONSUMERS, what="the workers"
            )

    def cut(self, n: int, down: bool) -> None:
        self.cuts[n].process.send_signal(signal.SIGUSR1 if down else signal.SIGUSR2)


def run_case(
    mode: str,
    servers: int,
    clients: int,
    *,
    duration_s: float,
    drop_s: float,
    deliveries: list[float],
    log_dir: Path,
    warmup_s: float = 0.0,
) -> ClusterCase:
    case = Case("cluster", mode, CONSUMERS, clients, "fast", [], False)
    stack = ClusterStack(case, log_dir, servers=servers)
    result: dict[str, Any] = {"mode": mode, "servers": servers, "clients": clients}
    steps: list[ClusterStep] = []
    loadgens = None
    try:
        stack.start()
        loadgens = Loadgens(stack, clients, clients, affinity=True)
        result["connected"] = sum(r["ready"] for r in loadgens.ready())
        depth = _queue_depth_reader(stack)
        if warmup_s > 0:
            warm = run_step(stack, loadgens, deliveries[0], warmup_s, len(deliveries) + 2, depth)
            print(
                f"  {mode:13} x{servers}: warm-up, p99 {warm.latency_ms.p99} ms (not counted)",
                file=sys.stderr,
                flush=True,
            )
        for index, offered in enumerate(deliveries):
            step = run_step(stack, loadgens, offered, duration_s, index, depth)
            steps.append(step)
            say(mode, servers, step)
            if step.saturated:
                break
        result["drop"] = run_step(
            stack, loadgens, deliveries[0], duration_s, len(deliveries) + 1, depth, drop_s=drop_s
        )
        say(mode, servers, result["drop"])
    except Exception as exc:
        result.setdefault("notes", []).append(f"case failed: {exc}")
        print(f"  {mode} x{servers}: case failed: {exc}", file=sys.stderr, flush=True)
    finally:
        if loadgens is not None:
            loadgens.stop()
        stack.stop()
    sustained = [s.deliveries_offered for s in steps if not s.saturated]
    return ClusterCase(**result, steps=steps, max_sustained_deliveries=max(sustained, default=0))


def say(mode: str, servers: int, step: ClusterStep) -> None:
    cut = f", Redis cut {step.redis_cut_s:.0f} s on server 0" if step.redis_cut_s else ""
    print(
        f"  {mode:13} x{servers}: {step.deliveries_offered:>6.0f} deliveries/s offered{cut}: "
        f"{step.deliveries_per_s:>7.0f}/s delivered, {step.lost} lost, p99 "
        f"{step.latency_ms.p99} ms, {step.us_per_delivery or 0:.1f} us servers' CPU per delivery"
        + ("  saturated" if step.saturated else ""),
        file=sys.stderr,
        flush=True,
    )


def run_step(
    stack: ClusterStack,
    loadgens: Loadgens,
    offered: float,
    duration_s: float,
    index: int,
    depth: Any,
    *,
    drop_s: float = 0.0,
) -> ClusterStep:
    clients = stack.case.clients
    rate = offered / clients
    servers = stack.by_role()["server"]
    loadgens.report()  # what arrived before this step is not its
    before = cpu_seconds(servers)
    cutter = None
    if drop_s:
        cutter = threading.Thread(target=cut_for, args=(stack, duration_s / 3, drop_s))
        cutter.start()
    produced = offer_load(stack, rate, duration_s, seq_start=(index + 1) * SEQ_STRIDE)
    if cutter is not None:
        cutter.join()
    wait_for_drain(depth)
    servers_cpu = cpu_seconds(servers) - before
    reports = loadgens.report()
    got = sum(r["unique"] for r in reports)
    expected = produced.sent * clients
    share = got / expected if expected else 0.0
    latency = histogram([r["latency_ms"] for r in reports])
    elapsed = max(duration_s, produced.elapsed_s or duration_s)
    p99 = latency.p99
    return ClusterStep(
        deliveries_offered=offered,
        rate=round(rate, 3),
        sent=produced.sent,
        deliveries=got,
        lost=max(0, expected - got),
        delivered_share=round(share, 4),
        deliveries_per_s=round(got / elapsed, 1),
        latency_ms=latency,
        servers_cpu_s=round(servers_cpu, 3),
        us_per_delivery=round(servers_cpu / got * 1e6, 2) if got else None,
        redis_cut_s=drop_s,
        saturated=p99 is None or p99 > SUSTAINED_P99_MS or share < SUSTAINED_DELIVERED,
    )


def cut_for(stack: ClusterStack, after_s: float, drop_s: float) -> None:
    time.sleep(after_s)  # into the step, so that events flow before and after the cut
    stack.cut(0, True)
    time.sleep(drop_s)  # the outage itself
    stack.cut(0, False)


def markdown(results: ClusterResults) -> str:
    lines = [
        "# Several servers behind nginx, sharing Redis",
        "",
        f"`{results.meta.command}` on {results.meta.cpus} CPUs, {results.meta.started}. "
        "Sustained: p99 <= 100 ms and >= 99 % delivered. Latency is the producer's send to "
        "the client's receive; CPU is every server process's together.",
        "",
        "| mode | servers | clients | max sustained deliveries/s | us servers' CPU per delivery "
        "(first step) | Redis cut on server 0: lost | delivered | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in results.cases:
        first = case.steps[0].us_per_delivery if case.steps else None
        drop = case.drop
        lines.append(
            f"| {case.mode} | {case.servers} | {case.connected} | "
            f"{case.max_sustained_deliveries:,.0f} | {first if first is not None else '-'} | "
            + (
                f"{drop.lost:,} | {drop.delivered_share:.2%} | {drop.latency_ms.p99} |"
                if drop
                else "- | - | - |"
            )
        )
    lines += ["", "Every step:", ""]
    lines += [
        "| mode | servers | offered/s | delivered/s | lost | p99 ms | us per delivery | cut s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in results.cases:
        for step in [*case.steps, *([case.drop] if case.drop else [])]:
            lines.append(
                f"| {case.mode} | {case.servers} | {step.deliveries_offered:,.0f} | "
                f"{step.deliveries_per_s:,.0f} | {step.lost:,} | {step.latency_ms.p99} | "
                f"{step.us_per_delivery} | {step.redis_cut_s:g} |"
            )
        for note in case.notes:
            lines.append(f"| {case.mode} | {case.servers} | {note} ||||||")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--servers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=SERVERS,
        help="server processes per case, comma list (default: %(default)s)",
    )
    parser.add_argument("--modes", type=lambda s: s.split(","), default=MODES)
    parser.add_argument("--clients", type=int, default=100, help="clients (default: %(default)s)")
    parser.add_argument(
        "--deliveries",
        type=lambda s: [float(n) for n in s.split(",")],
        default=DELIVERIES,
        help="offered deliveries/s per step, comma list (default: %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per step")
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds at the first rate before the first step, not counted (default: %(default)s)",
    )
    parser.add_argument(
        "--drop",
        type=float,
        default=1.0,
        help="seconds server 0's Redis connection is cut (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/cluster-<time>)")
    args = parser.parse_args(argv)
    started, out, logs = start_run(args.out, "cluster", len(args.modes) * len(args.servers))
    t0 = time.monotonic()
    cases = [
        run_case(
            mode,
            n,
            args.clients,
            duration_s=args.duration,
            drop_s=args.drop,
            deliveries=args.deliveries,
            log_dir=logs,
            warmup_s=args.warmup,
        )
        for n in args.servers
        for mode in args.modes
    ]
    meta = RunMeta.here(
        "python -m bench.cluster", argv, started, duration_s=round(time.monotonic() - t0, 1)
    )
    results = ClusterResults(meta=meta, cases=cases)
    (out / "cluster.json").write_text(results.model_dump_json(indent=2), encoding="utf-8")
    (out / "cluster.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0 if all(not c.notes for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
