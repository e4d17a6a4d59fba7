"""One benchmark case's processes: SQS back end, server (and workers, and Redis), on free
loopback ports; started fresh for each case through `devtools.supervisor` and stopped after it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devtools.supervisor import PYTHON, ROOT, Process, Supervisor, free_port

__all__ = ["PYTHON", "QUEUE", "Case", "Proc", "Stack", "free_port"]

QUEUE = "bench"
READY_TIMEOUT_S = 60.0
#: SHUTDOWN_TIMEOUT_S below is 2 s; past this the stop SIGKILLs what is left.
STOP_TIMEOUT_S = 6.0


@dataclass(frozen=True)
class Proc:
    """A benchmark process: the role its CPU and RSS are counted under, and the process."""

    role: str  # server, workers, sqs, broker
    process: Process

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        return self.process.popen

    @property
    def log(self) -> Path:
        return self.process.log_path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)


@dataclass
class Case:
    regime: str
    mode: str
    consumers: int
    clients: int
    backend: str
    rates: list[float]
    #: The server process on its own core(s), everything else on the rest (`--pin`).
    pinned: bool = False

    @property
    def group(self) -> str:
        """The regime as the report groups it: pinned cases are compared among themselves."""
        return f"{self.regime}-pinned" if self.pinned else self.regime

    @property
    def label(self) -> str:
        multi = ("process", "thread", "minimal")
        return f"{self.mode} x{self.consumers}" if self.mode in multi else self.mode


@dataclass
class Stack:
    case: Case
    log_dir: Path
    delay_ms: float = 0.0
    sqs_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    zmq_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)
    #: the server's module in "process"/"thread" mode, and its extra environment (the soak's
    #: `--tracemalloc` runs it through bench.heapwatch)
    server_module: str = "server"
    server_env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.log_dir)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sqs_port}"

    @property
    def queue_url(self) -> str:
        return f"{self.endpoint}/123456789012/{QUEUE}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SQS_", "ZMQ_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            SQS_QUEUE_URL=self.queue_url,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            ZMQ_BIND=f"tcp://127.0.0.1:{self.zmq_port}",
            PORT=str(self.http_port),
            AUTH="none",
            LOG_LEVEL="WARNING",
            SQS_WAIT_S="2",
            SHUTDOWN_TIMEOUT_S="2",
            CONSUMER="process",
            # every bench client connects from 127.0.0.1: no per-address connect limit
            CLIENT_CONNECT_RATE="0",
            BENCH_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
        )
        env.update(extra)
        return env

    def spawn(self, role: str, name: str, args: list[str], **env: str) -> Proc:
        label = f"{self.case.group}-{self.case.label.replace(' ', '')}-{name}"
        proc = Proc(role, self.supervisor.spawn(label, args, self.env(**env)))
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        case = self.case
        if case.backend == "fast":
            sqs = self.spawn(
                "sqs", "fakesqs",
                [PYTHON, "-m", "bench.fakesqs", "--port", str(self.sqs_port), "--queue", QUEUE,
                 "--delay-ms", str(self.delay_ms)],
            )  # fmt: skip
        else:
            sqs = self.spawn("sqs", "moto", [PYTHON, "-m", "sqs_emulator"], LOG_LEVEL="INFO")
        sqs.process.wait_ready(
            lambda: "ready" in sqs.log.read_text(),
            what=f"the SQS back end ({case.backend})",
            timeout_s=READY_TIMEOUT_S,
        )
        if case.mode == "redis-manager":
            redis = shutil.which("redis-server")
            if redis is None:
                raise RuntimeError("redis-server not found: apt-get install redis-server")
            broker = self.spawn(
                "broker", "redis",
                [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"],
            )  # fmt: skip
            broker.process.wait_ready(
                lambda: _redis_up(self.redis_port), what="redis-server", timeout_s=READY_TIMEOUT_S
            )
        if case.mode in ("process", "thread"):
            extra = {"CONSUMER": case.mode, "WORKER_THREADS": str(case.consumers)}
            extra.update(self.server_env)
            server = self.spawn("server", "server", [PYTHON, "-m", self.server_module], **extra)
        else:
            server_mode = "redis-server" if case.mode == "redis-manager" else case.mode
            server = self.spawn("server", "server", [PYTHON, "-m", "bench.variants", server_mode])
        server.process.wait_ready(
            lambda: _http_ok(f"{self.url}/healthz"), what="the server", timeout_s=READY_TIMEOUT_S
        )
        if case.pinned:
            pin(server.process.pid, cpu_split()[0])
        if case.mode == "process":
            for n in range(case.consumers):
                self.spawn("workers", f"worker{n}", [PYTHON, "-m", "worker"])
        elif case.mode in ("redis-manager", "minimal"):
            worker_mode = "redis-worker" if case.mode == "redis-manager" else "minimal-worker"
            for n in range(case.consumers):
                self.spawn(
                    "workers", f"{worker_mode}{n}", [PYTHON, "-m", "bench.variants", worker_mode]
                )
        if case.mode in ("process", "minimal"):
            server.process.wait_ready(
                lambda: _workers_connected(self.url) >= case.consumers,
                what="the workers",
                timeout_s=READY_TIMEOUT_S,
            )

    def by_role(self) -> dict[str, list[psutil.Process]]:
        roles: dict[str, list[psutil.Process]] = {}
        for proc in self.procs:
            if proc.process.alive():
                roles.setdefault(proc.role, []).append(proc.ps)
        return roles

    def exited(self) -> list[str]:
        """The log names of the processes that have exited."""
        return [p.log.name for p in self.procs if not p.process.alive()]

    def stop(self) -> None:
        self.supervisor.stop_all(timeout_s=STOP_TIMEOUT_S)


def cpu_split() -> tuple[set[int], set[int]]:
    """`--pin`: (the server process's cores, everyone else's): the machine's first core for
    the server's one event loop (and, in thread mode, its consumer threads), the rest for the
    workers, the load source, the producer, the clients and the harness."""
    cpus = list(range(os.cpu_count() or 1))
    return {cpus[0]}, set(cpus[1:]) or {cpus[0]}


@contextlib.contextmanager
def harness_pinned(pinned: bool) -> Iterator[None]:
    """While it lasts, the harness (and so every process it starts) runs on the others' cores."""
    if not pinned:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_split()[1])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` onto `cpus` (sched_setaffinity is per thread; threads
    started later inherit it from the thread that starts them)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _workers_connected(url: str) -> int:
    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
        return int(json.loads(response.read()).get("workers_connected", 0))


def _redis_up(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
