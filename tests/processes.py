"""Real processes for integration tests: start on free loopback ports, wait on a real signal,
stop in teardown, keep the logs for the failure report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tokens import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Settings that must not leak from the developer's shell or .env into a test's processes.
_OURS = {
    "AUTH", "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_AUDIENCE", "JWT_ISSUER", "JWT_ALGORITHMS",
    "JWT_LEEWAY_S", "JWT_ROOMS_CLAIM", "JWT_NAMESPACES_CLAIM", "DEMO", "CLIENT_EVENTS",
    "SQS_QUEUE_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
    "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "ZMQ_BIND", "ZMQ_CONNECT", "PORT", "HOST",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the thing we wait for is not up yet
            last_error = exc
        time.sleep(interval_s)  # polling interval of a real readiness signal, not a sync sleep
    raise TimeoutError(
        f"timed out after {timeout_s} s waiting for {what} (last error: {last_error})"
    )


@dataclass
class Stack:
    """The settings one test's processes share: a fresh queue and fresh ports."""

    sqs_port: int = field(default_factory=free_port)
    zmq_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    queue_name: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self.sqs_port}/123456789012/{self.queue_name}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _OURS}
        env.update(
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
            SQS_QUEUE_URL=self.queue_url,
            ZMQ_BIND=f"tcp://127.0.0.1:{self.zmq_port}",
            PORT=str(self.http_port),
            SQS_WAIT_S="2",
            LOG_LEVEL="INFO",
            JWT_SECRET=TEST_SECRET,
        )
        env.update(self.extra)
        env.update(overrides)
        return env

    def settings(self) -> Any:
        from shared.settings import load_settings

        return load_settings({"SQS_QUEUE_URL": self.queue_url, **self.extra})

    def sqs_client(self) -> Any:
        from shared.sqs import make_sqs_client

        return make_sqs_client(self.settings())

    async def wait_counter(self, name: str, value: int, timeout_s: float = 60) -> None:
        """Wait (without blocking the event loop) until the server's counter reaches `value`."""
        await asyncio.to_thread(
            wait_until,
            lambda: healthz(self.base_url)["counters"].get(name, 0) >= value,
            timeout_s=timeout_s,
            what=f"server counter {name} >= {value}",
        )


class Process:
    """One subprocess with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log_file = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            # Not the repo root: a developer's .env there must not leak into a test.
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can reach children
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)
        # else: already gone; stop() still reaps it and closes the log

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> tuple[int | None, float]:
        """Signal, wait, SIGKILL the group if needed. Returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.send_signal(sig)
        try:
            code: int | None = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - started
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        self._log_file.close()
        return code, elapsed


class Processes:
    """The processes of one test; the fixture stops them all and reports their logs."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, module_args: list[str], env: dict[str, str]) -> Process:
        process = Process(name, [PYTHON, *module_args], env, self.log_dir)
        self.started.append(process)
        return process

    # --- the relay's own processes -----------------------------------------------------------
    def sqs(self, stack: Stack) -> Process:
        process = self.start("sqs", ["-m", "sqs_emulator"], stack.env())
        from shared.sqs import make_sqs_client

        sqs = make_sqs_client(stack.settings())

        def ready() -> bool:
            process.check_alive()
            sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])
            return True

        wait_until(ready, timeout_s=30, what="the SQS emulator's queue")
        return process

    def server(self, stack: Stack, **env: str) -> Process:
        process = self.start("server", ["-m", "server"], stack.env(**env))
        wait_until(
            lambda: process.check_alive() or healthz(stack.base_url)["subscriber"],
            timeout_s=30,
            what="the server's /healthz",
        )
        return process

    def worker(self, stack: Stack, name: str = "worker", **env: str) -> Process:
        return self.start(name, ["-m", "worker"], stack.env(**env))

    def stop_all(self) -> None:
        """SIGTERM to all at once (as honcho does), then wait for each in turn."""
        for process in self.started:
            process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            process.stop(timeout_s=10)

    def report(self) -> str:
        return "\n".join(f"----- {p.name} (pid {p.pid}) -----\n{p.log()}" for p in self.started)


def healthz(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
        return json.loads(response.read())
