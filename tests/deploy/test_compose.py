"""deploy/compose/compose.yaml brought up by podman-compose (PyPI) with its `local` profile:
the emulator, Redis, two relay servers in cluster mode, a worker and nginx in front, each a
container of the images the file builds; events sent through SQS reach WebSocket and
long-polling clients through nginx."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.supervisor import ROOT, free_port, wait_until
from tests.clients import RecordingClient
from tests.deploy import podman
from tests.deploy.conftest import Image
from tests.integration.helpers import report, send_async, wait_queue_empty_async
from tests.processes import Processes, Stack, readyz
from tests.tokens import TEST_SECRET

#: The first test that needs an image builds it (debootstrap, apt and PyPI on a fresh machine:
#: minutes), inside its own time limit.
pytestmark = pytest.mark.timeout(900)

COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
#: The loopback ports the file gives its services (the emulator's queue URL is the relay's
#: default one); nginx's comes from RELAY_LISTEN, a free one here.
FIXED_PORTS = {"sqs": 9324, "redis": 6390, "server1": 8001, "server2": 8002, "zmq1": 5561,
               "zmq2": 5562}  # fmt: skip
SERVICES = ("sqs", "redis", "server1", "server2", "worker", "nginx")


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Compose:
    def __init__(self, project: str, env: dict[str, str]) -> None:
        self.project = project
        self.env = env

    def argv(self, *args: str) -> list[str]:
        # --in-pod false: containers on the host's network cannot share a pod's namespace
        return [
            sys.executable, "-m", "podman_compose", "--in-pod", "false", "--profile", "local",
            "-p", self.project, "-f", str(COMPOSE), *args,
        ]  # fmt: skip

    def run(self, *args: str, timeout_s: float = 120) -> str:
        done = subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout


@pytest.fixture(scope="module")
def images(relay_image: Image) -> dict[str, float]:
    """The file's images (MB), built as podman-compose would build them, on the tests' base."""
    sizes = {"relay": relay_image.size_mb}
    for name in ("nginx", "redis"):
        tag = f"sqs-relay-{name}:local"
        podman.build(tag, ROOT / "deploy" / "compose" / f"{name}.Containerfile", ROOT)
        sizes[name] = podman.image_size_mb(tag)
    return sizes


@pytest.fixture
def compose(
    images: dict[str, float], processes: Processes, tmp_path: Path
) -> Iterator[tuple[Compose, int]]:
    """`podman-compose up` of the file in the foreground (its output, every container's, is
    the test's process log); `down` in teardown."""
    busy = {name: port for name, port in FIXED_PORTS.items() if listening(port)}
    assert not busy, f"compose.yaml's loopback ports are taken: {busy}"
    port = free_port()
    env = podman.environment() | {
        "JWT_SECRET": TEST_SECRET,
        "RELAY_LISTEN": f"127.0.0.1:{port}",
        "BASE": podman.BASE,
    }
    stack = Compose(f"relay-test-{os.getpid()}", env)
    processes.spawn("compose", stack.argv("up", "--no-build"), env)
    try:
        yield stack, port
    finally:
        stack.run("down", "--volumes", "--timeout", "10", timeout_s=180)


async def test_the_compose_file_relays_events_through_nginx_to_websocket_and_polling_clients(
    compose: tuple[Compose, int], processes: Processes, images: dict[str, float]
) -> None:
    started = time.monotonic()
    project, port = compose
    # Given the file's services up: nginx answers /readyz from a server that has a worker and
    # Redis
    relay = Stack(sqs_port=FIXED_PORTS["sqs"], http_port=port, queue_name="push-relay")
    [up] = processes.started

    def ready(port: int) -> bool:
        up.check_alive()
        return readyz(port)[0] == 200

    # (each server first: nginx counts a refused connection against a server for 5 s)
    for port_ in (FIXED_PORTS["server1"], FIXED_PORTS["server2"], port):
        await asyncio.to_thread(
            wait_until, functools.partial(ready, port_), timeout_s=120, what=f"/readyz on {port_}"
        )
    # and the emulator's queue exists (the servers are ready once a worker is connected,
    # which does not wait for the queue)
    sqs = relay.sqs_client()

    def queue() -> object:
        up.check_alive()
        return sqs.get_queue_attributes(QueueUrl=relay.queue_url, AttributeNames=["QueueArn"])

    await asyncio.to_thread(wait_until, queue, timeout_s=60, what="the emulator's queue")
    ready_s = time.monotonic() - started
    names = podman.podman("ps", "--filter", f"label=io.podman.compose.project={project.project}",
                          "--format", "{{.Names}}").split()  # fmt: skip
    assert {name.split("_")[1] for name in names} == set(SERVICES), names

    # When a WebSocket client and a long-polling client connect through nginx and an event is
    # sent through SQS
    websocket = await RecordingClient().connect(relay.base_url, transports=["websocket"])
    polling = await RecordingClient().connect(relay.base_url, transports=["polling"])
    [message_id] = await send_async(sqs, relay.queue_url, [{"event": "order", "data": {"id": 7}}])
    # Then each receives it once, and the worker deleted it
    for client in (websocket, polling):
        [(event, payload)] = await client.wait_for(1)
        assert (event, payload["id"], payload["data"]) == ("order", message_id, {"id": 7})
    await wait_queue_empty_async(sqs, relay.queue_url)
    for client in (websocket, polling):
        await client.close()
    sizes = {f"{name}_mb": round(size) for name, size in images.items()}
    relay_s = round(time.monotonic() - started, 1)
    report("compose", **sizes, ready_s=round(ready_s, 1), relay_s=relay_s)
