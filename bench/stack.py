"""One benchmark case's processes: SQS back end, server (and workers, and Redis), on free
loopback ports; started fresh for each case and stopped after it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUEUE = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    role: str  # server, workers, sqs, broker
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.popen.pid)


@dataclass
class Case:
    regime: str
    mode: str
    consumers: int
    clients: int
    backend: str
    rates: list[float]

    @property
    def label(self) -> str:
        return f"{self.mode} x{self.consumers}" if self.mode in ("process", "thread") else self.mode


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
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
        )
        env.update(extra)
        return env

    def spawn(self, role: str, name: str, args: list[str], **env: str) -> Proc:
        log = self.log_dir / f"{self.case.regime}-{self.case.label.replace(' ', '')}-{name}.log"
        popen = subprocess.Popen(
            args,
            env=self.env(**env),
            cwd=self.log_dir,
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(role, popen, log)
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
            self._wait(lambda: "ready" in sqs.log.read_text(), sqs, "the fast SQS back end")
        else:
            sqs = self.spawn("sqs", "moto", [PYTHON, "-m", "sqs_emulator"], LOG_LEVEL="INFO")
            self._wait(lambda: "ready" in sqs.log.read_text(), sqs, "moto's server")
        if case.mode == "redis-manager":
            redis = shutil.which("redis-server")
            if redis is None:
                raise RuntimeError("redis-server not found: apt-get install redis-server")
            broker = self.spawn(
                "broker", "redis",
                [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"],
            )  # fmt: skip
            self._wait(lambda: _redis_up(self.redis_port), broker, "redis-server")
        if case.mode in ("process", "thread"):
            extra = {"CONSUMER": case.mode, "WORKER_THREADS": str(case.consumers)}
            server = self.spawn("server", "server", [PYTHON, "-m", "server"], **extra)
        else:
            server_mode = "redis-server" if case.mode == "redis-manager" else case.mode
            server = self.spawn("server", "server", [PYTHON, "-m", "bench.variants", server_mode])
        self._wait(lambda: _http_ok(f"{self.url}/healthz"), server, "the server")
        if case.mode == "process":
            for n in range(case.consumers):
                self.spawn("workers", f"worker{n}", [PYTHON, "-m", "worker"])
        elif case.mode == "redis-manager":
            for n in range(case.consumers):
                self.spawn(
                    "workers", f"redis-worker{n}", [PYTHON, "-m", "bench.variants", "redis-worker"]
                )
        if case.mode == "process":
            self._wait(
                lambda: _workers_connected(self.url) >= case.consumers, server, "the workers"
            )

    def _wait(self, ready: Any, proc: Proc, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{what} exited: {proc.log.read_text()[-2000:]}")
            try:
                if ready():
                    return
            except Exception:
                pass  # not up yet
            time.sleep(0.1)  # polling interval for a readiness signal
        raise RuntimeError(f"timed out waiting for {what}")

    def by_role(self) -> dict[str, list[psutil.Process]]:
        roles: dict[str, list[psutil.Process]] = {}
        for proc in self.procs:
            if proc.popen.poll() is None:
                roles.setdefault(proc.role, []).append(proc.ps)
        return roles

    def alive(self) -> list[str]:
        return [p.log.name for p in self.procs if p.popen.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(6)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _workers_connected(url: str) -> int:
    import json

    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
        return int(json.loads(response.read()).get("workers_connected", 0))


def _redis_up(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
