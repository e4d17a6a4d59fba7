"""The relay's OCI image (Dockerfile): built here with podman on a debootstrapped Debian
bookworm, then run as containers (the emulator, a server and a worker) that relay an event end
to end and stop on SIGTERM by themselves within the grace a deployment gives them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.deploy import podman
from tests.deploy.conftest import Image
from tests.integration.helpers import relays_one_event, report
from tests.processes import Process, Processes, Stack, healthz

#: The first test that needs an image builds it (debootstrap, apt and PyPI on a fresh machine:
#: minutes), inside its own time limit.
pytestmark = pytest.mark.timeout(900)

#: The grace the compose file (stop_grace_period) and the Kubernetes manifests
#: (terminationGracePeriodSeconds, less the preStop pause) give a container before SIGKILL.
GRACE_S = 10
#: What a build must not leave in the last stage.
BUILD_TOOLS = ("gcc", "cc", "make", "pip", "pip3", "uv", "git", "npm", "node")


def container_env(stack: Stack, **overrides: str) -> dict[str, str]:
    """The relay's settings of `stack` for a container: what stack.env() sets beyond this
    process's own environment (no PATH, no PYTHONPATH), listening on loopback only."""
    env = stack.env(HOST="127.0.0.1", **overrides)
    ours = {k: v for k, v in env.items() if os.environ.get(k) != v}
    return {k: v for k, v in ours.items() if k not in ("PYTHONPATH", "PYTHONUNBUFFERED")}


@pytest.fixture
def containers(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Names of the containers a test starts; removed whatever happened."""
    names: list[str] = []
    yield names
    podman.remove(*names)


def start(
    processes: Processes, containers: list[str], role: str, image: Image, command: str,
    env: dict[str, str],
) -> Process:  # fmt: skip
    name = f"relay-test-{role}-{os.getpid()}-{len(containers)}"
    containers.append(name)
    argv = podman.run_argv(name, image.name, [command], env)
    return processes.spawn(role, argv, podman.environment())


def start_relay(
    processes: Processes, containers: list[str], stack: Stack, image: Image
) -> tuple[Process, Process]:
    """The emulator, a server and a worker, each in its own container, ready."""
    sqs = start(processes, containers, "sqs", image, "sqs-relay-emulator", container_env(stack))
    client = stack.sqs_client()
    sqs.wait_ready(
        lambda: client.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"]),
        what="the emulator container's queue", timeout_s=60,
    )  # fmt: skip
    server = start(processes, containers, "server", image, "sqs-relay-server", container_env(stack))
    server.wait_ready(
        lambda: healthz(stack.base_url)["subscriber"], what="the server container's /healthz",
        timeout_s=60,
    )  # fmt: skip
    worker = start(processes, containers, "worker", image, "sqs-relay-worker", container_env(stack))
    return server, worker


def test_the_image_runs_as_a_non_root_user_under_tini_with_no_build_tools_or_secrets(
    relay_image: Image,
) -> None:
    # Given the image's configuration
    [config] = json.loads(podman.podman("image", "inspect", relay_image.name))
    settings = config["Config"]
    # Then it runs as uid 10001 under tini, is stopped with SIGTERM, checks /healthz
    assert settings["User"] == "10001:10001"
    assert settings["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert settings["StopSignal"] == "SIGTERM"
    # (podman shows the health check beside the configuration, Docker inside it)
    health = config.get("Healthcheck") or settings["Healthcheck"]
    assert "/healthz" in " ".join(health["Test"])
    # and its environment names no secret and not the build's CA bundle
    env = dict(entry.split("=", 1) for entry in settings["Env"])
    for name in env:
        assert not any(word in name for word in ("SECRET", "KEY", "TOKEN", "PASSWORD")), name
    assert not any("/run/secrets" in value for value in env.values())

    # When a container of it says who it is and what it has
    found = podman.podman(
        "run", "--rm", relay_image.name, "sh", "-c",
        f"id -u; for c in {' '.join(BUILD_TOOLS)}; do command -v $c; done; "
        "ls /run/secrets /src 2>/dev/null; sqs-relay-server --help >/dev/null && echo ok",
    ).split()  # fmt: skip
    # Then it is the non-root user, with no compiler, pip, uv or npm, no build secret and no
    # source tree left, and the relay's commands on the PATH
    assert found == ["10001", "ok"], found
    report("image", size_mb=round(relay_image.size_mb), build_s=round(relay_image.build_s))


async def test_containers_of_the_image_relay_an_event_and_pass_their_health_check(
    relay_image: Image, processes: Processes, stack: Stack, containers: list[str]
) -> None:
    # Given the emulator, a server and a worker, each a container of the image
    started = time.monotonic()
    start_relay(processes, containers, stack, relay_image)
    # Then a client receives an event sent through SQS, and the worker deleted it
    await relays_one_event(stack)
    # And the server container's own health check (the image's HEALTHCHECK) passes
    server = containers[1]
    podman.podman("healthcheck", "run", server)
    assert podman.podman("inspect", "--format", "{{.State.Health.Status}}", server).strip() == (
        "healthy"
    )
    report("image-relay", relay_s=round(time.monotonic() - started, 1))


async def test_server_and_worker_containers_stop_on_sigterm_by_themselves_within_the_grace(
    relay_image: Image, processes: Processes, stack: Stack, containers: list[str]
) -> None:
    # Given a relay of containers that has delivered an event
    server, worker = start_relay(processes, containers, stack, relay_image)
    await relays_one_event(stack)
    # When each is stopped as a deployment stops it: SIGTERM, SIGKILL after the grace
    stops = {}
    for process, name in ((worker, containers[2]), (server, containers[1])):
        started = time.monotonic()
        podman.podman("stop", "--time", str(GRACE_S), name, timeout_s=GRACE_S + 30)
        code = process.wait(30)
        stops[process.name] = (code, round(time.monotonic() - started, 1))
    # Then each exited by itself, with status 0, having logged its orderly stop: the SIGTERM
    # reached the relay through tini, and nothing needed the SIGKILL
    assert stops["server"][0] == 0 and stops["worker"][0] == 0, stops
    assert all(seconds < GRACE_S for _, seconds in stops.values()), stops
    assert "Relay stopped" in server.log()
    assert "Stopped worker" in worker.log()
    report("image-stop", **{f"{name}_s": seconds for name, (_, seconds) in stops.items()})
