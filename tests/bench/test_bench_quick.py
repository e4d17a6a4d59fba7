"""`python -m bench --quick` with tiny numbers: every mode produces figures (no timing is
asserted: speed is measured in bench/, never in a test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.results import BenchResults
from tests.processes import PYTHON, ROOT

MODES = {"minimal", "process", "thread", "thread-direct", "naive", "aiobotocore", "redis-manager"}


@pytest.mark.timeout(300)
def test_quick_run_gives_every_mode_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "bench",
            "--quick",
            "--rates",
            "40",
            "--duration",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = BenchResults.load(tmp_path / "results.json")  # the file fits the models
    cases = results.cases
    assert {c.mode for c in cases} == MODES
    assert {c.regime for c in cases} == {"handoff", "fanout"}
    for case in cases:
        assert case.steps, f"{case.label}: no step ran: {case.notes}"
        step = case.steps[0]
        assert step.sent, case.label
        if case.mode == "naive":
            continue  # the recipe as written may deliver nothing; what it does is reported
        assert step.delivered, f"{case.label}: {step.errors} {case.notes}"
        assert step.latency_ms.p99 is not None and step.latency_ms.p99 > 0
        assert step.cpu_s_per_1000["server"] is not None
    report = (tmp_path / "report.md").read_text()
    for case in cases:
        assert case.label is not None and case.label in report
    assert list(tmp_path.glob("*.png"))
