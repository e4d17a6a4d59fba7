"""Real processes for integration tests: the relay's own processes on free loopback ports,
started through `devtools.supervisor` (its own process group each, output in a log file, a
real readiness signal), stopped in teardown, their logs kept for the failure report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from devtools.supervisor import PYTHON, ROOT, Process, Supervisor, free_port, wait_until
from tests.tokens import TEST_SECRET

__all__ = [
    "PYTHON", "ROOT", "Process", "Processes", "Stack", "free_port", "healthz", "wait_until",
]  # fmt: skip

#: Settings that must not leak from the developer's shell or .env into a test's processes.
_OURS = {
    "AUTH", "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_AUDIENCE", "JWT_ISSUER", "JWT_ALGORITHMS",
    "JWT_LEEWAY_S", "JWT_ROOMS_CLAIM", "JWT_NAMESPACES_CLAIM", "DEMO", "CLIENT_EVENTS",
    "SQS_QUEUE_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
    "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "ZMQ_BIND", "ZMQ_CONNECT", "PORT", "HOST", "REDIS_URL", "REDIS_PREFIX",
    "SQS_EMULATOR_LISTEN", "MOTO_ENABLE_RECORDING", "MOTO_RECORDER_FILEPATH", "JWT_SUBSCRIBE_CLAIM",
    "PRESENCE_ROOMS", "PRESENCE_GRACE_S", "PRESENCE_LEASE_S", "PRESENCE_INFO_CLAIM",
    "PRESENCE_MAX_MEMBERS", "PRESENCE_PAGE_SIZE", "PRESENCE_COALESCE_S",
    "PRESENCE_EVENTS_QUEUE_URL", "PRESENCE_OUTBOX_MAX", "PRESENCE_STATE_FILE",
    "DISCONNECT_REVOKE_S", "STATE_ROOMS", "STATE_MAX_KEYS", "STATE_MAX_BYTES", "BACKEND_API_KEY",
    "BACKEND_API_RATE", "BACKEND_API_MAX_EVENTS", "ADMIN_UI", "ADMIN_USERNAME", "ADMIN_PASSWORD",
    "ADMIN_NAMESPACE", "ADMIN_MODE",
    "CLIENT_MESSAGE_MAX_BYTES", "CLIENT_HEADER_TIMEOUT_S", "CLIENT_MAX_CONNECTIONS",
    "CLIENT_CONNECT_RATE", "CLIENT_CONNECT_BURST", "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES",
}  # fmt: skip


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


class Processes(Supervisor):
    """The processes of one test; the fixture stops them all and reports their logs."""

    def start(self, name: str, module_args: list[str], env: dict[str, str]) -> Process:
        """Start `python <module_args>` (e.g. ["-m", "worker"]) under `name`."""
        return self.spawn(name, [PYTHON, *module_args], env)

    # --- the relay's own processes -----------------------------------------------------------
    def sqs(self, stack: Stack) -> Process:
        process = self.start("sqs", ["-m", "sqs_emulator"], stack.env())
        sqs = stack.sqs_client()
        process.wait_ready(
            lambda: sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"]),
            what="the SQS emulator's queue",
        )
        return process

    def server(self, stack: Stack, **env: str) -> Process:
        process = self.start("server", ["-m", "server"], stack.env(**env))
        process.wait_ready(
            lambda: healthz(stack.base_url)["subscriber"], what="the server's /healthz"
        )
        return process

    def worker(self, stack: Stack, name: str = "worker", **env: str) -> Process:
        return self.start(name, ["-m", "worker"], stack.env(**env))

    def relay(self, stack: Stack) -> None:
        """The whole relay of one test, each part ready: the emulator, a server, a worker."""
        self.sqs(stack)
        self.server(stack)
        self.worker(stack)

    # --- Debian's parts, for cluster mode -------------------------------------------------------
    def redis(self, port: int, name: str = "redis") -> Process:
        """redis-server on `port`, append-only with an fsync per write (what docs/cluster.md says
        cluster mode needs), its data in a folder of this test's that outlives a restart."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found: .ci/run installs it (apt-get install redis-server)"
        data = self.log_dir / f"redis-{port}"
        data.mkdir(exist_ok=True)
        process = self.spawn(
            name,
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            os.environ,
        )  # fmt: skip
        process.wait_ready(lambda: redis_ping(port), what=f"redis-server on port {port}")
        return process

    def balancer(self, port: int, servers: list[int]) -> Process:
        """nginx on `port` in front of the servers on `servers` (python -m devtools.balancer)."""
        upstreams = ",".join(f"127.0.0.1:{p}" for p in servers)
        process = self.start(
            "nginx",
            ["-m", "devtools.balancer", "--listen", f"127.0.0.1:{port}", "--servers", upstreams,
             "--dir", str(self.log_dir / f"nginx-{port}")],
            {**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        process.wait_ready(lambda: healthz(f"http://127.0.0.1:{port}"), what="nginx")
        return process


def healthz(base_url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # nginx's 502 before a server is up, say
        exc.close()
        raise


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """A server's (or nginx's) /readyz on loopback `port`: its status code and its body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")
