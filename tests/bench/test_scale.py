"""`python -m bench.scale` with tiny numbers: stock and this server each get every client
connected and every broadcast delivered, through Node's socket.io-client, and the report is
written (no timing is asserted: speed is measured in bench/, never in a test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.scale import ScaleResults
from tests.processes import PYTHON, ROOT


@pytest.mark.timeout(300)
def test_a_tiny_scale_run_connects_everyone_and_delivers_every_broadcast(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "bench.scale", "--clients", "30", "--modes", "minimal,process",
         "--duration", "1", "--per-node", "20", "--storm-s", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = ScaleResults.model_validate_json((tmp_path / "scale.json").read_text())
    assert [(c.mode, c.clients) for c in results.cases] == [("minimal", 30), ("process", 30)]
    for case in results.cases:
        assert case.notes == [] and case.connected == 30 and case.connect_failed == 0, case
        # the first connects spread over the 1-s window (the last at 19/20 of it), not at once
        assert case.storm_s == 1.0 and case.connect_s is not None and case.connect_s >= 0.9
        first = case.steps[0]  # over two Node processes: 20 clients and 10
        assert first.sent > 0 and first.delivered_share == 1.0, first
        assert first.latency_ms.p99 is not None and first.us_per_delivery is not None
    # only this server's payload says when it was emitted
    assert [c.steps[0].emit_latency_ms.measured for c in results.cases] == [False, True]
    report = (tmp_path / "scale.md").read_text()
    assert "| stock python-socketio | 30 | 1.0 |" in report and (tmp_path / "scale.png").exists()
