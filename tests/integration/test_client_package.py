"""The Python client helper as its own distribution (client/pyproject.toml): built, installed
into an environment that has nothing else of the relay, and used there against a running
relay, through a network cut it recovers from."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from devtools.netcut import NetCut
from tests.integration.helpers import json_lines_until, send
from tests.processes import ROOT, Processes, Stack
from tests.tokens import token

LISTENER = """
import asyncio, json, sys
from sqs_relay_client import RelayClient

def say(**fields):
    print(json.dumps(fields), flush=True)

async def main():
    url, token = sys.argv[1], sys.argv[2]
    options = dict(reconnection_delay=0.1, reconnection_delay_max=0.5)
    on_recovery = lambda r: say(recovery=[r.room, r.recovered, r.replayed])
    async with RelayClient(url, token=token, rooms=["shop"], transports=["websocket"],
                           on_recovery=on_recovery, **options) as relay:
        say(connected=True)
        async for event in relay:
            say(event=event.data, room=event.room, offset=event.offset)

asyncio.run(main())
"""


def uv(*args: str, cwd: Path) -> None:
    subprocess.run(["uv", *args], cwd=cwd, check=True, capture_output=True, timeout=300)


def install_client(tmp: Path) -> Path:
    """Build client/'s wheel and install it into a new environment; its python."""
    uv("build", "--wheel", "--out-dir", str(tmp / "dist"), str(ROOT / "client"), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("sqs_push_relay_client-*.whl")
    uv("venv", "--quiet", "--python", sys.executable, str(tmp / "venv"), cwd=tmp)
    python = tmp / "venv" / "bin" / "python"
    try:  # the uv cache holds python-socketio and aiohttp already
        uv("pip", "install", "--offline", "--python", str(python), str(wheel), cwd=tmp)
    except subprocess.CalledProcessError:
        uv("pip", "install", "--python", str(python), str(wheel), cwd=tmp)
    return python


async def test_the_client_helper_installed_alone_receives_and_recovers_events(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the helper's wheel installed into an environment with nothing of the relay
    python = install_client(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for relay_package in ("shared", "server", "worker", "client"):
        found = subprocess.run(
            [str(python), "-c", f"import {relay_package}"], cwd=tmp_path, env=env,
            capture_output=True,
        )  # fmt: skip
        assert found.returncode != 0, f"{relay_package} is importable in the new environment"
    # and a running relay, reached through a network the test can cut
    processes.relay(stack)
    sqs = stack.sqs_client()
    async with NetCut(stack.http_port) as net:
        script = tmp_path / "listener.py"
        script.write_text(LISTENER)
        listener = await asyncio.create_subprocess_exec(
            str(python), str(script), net.url, token(), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert listener.stdout is not None
        try:
            # When it listens in room shop and gets an event
            await json_lines_until(listener.stdout, lambda seen: seen and "connected" in seen[-1])
            send(sqs, stack.queue_url, [{"event": "e", "data": "first", "room": "shop"}])
            [first] = await json_lines_until(listener.stdout, lambda seen: len(seen) == 1)
            assert first == {"event": "first", "room": "shop", "offset": 1}
            # and its network goes while 3 shop events are sent, then comes back
            net.cut()
            send(
                sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(3)]
            )
            await stack.wait_counter("emitted", 4)
            net.restore()
            # Then it gets the 3 it missed, once and in order, and says shop was recovered
            said = await json_lines_until(
                listener.stdout,
                lambda seen: (
                    len([s for s in seen if "event" in s]) == 3
                    and any(s.get("recovery", [None])[0] == "shop" for s in seen)
                ),
            )
            events = [s for s in said if "event" in s]
            assert [(e["event"], e["offset"]) for e in events] == [(0, 2), (1, 3), (2, 4)]
            assert ["shop", True, 3] in [s["recovery"] for s in said if "recovery" in s]
        finally:
            listener.kill()
            await listener.wait()
