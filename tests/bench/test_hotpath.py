"""`python -m bench.hotpath` measures this checkout's per-message code (no speed asserted)."""

from __future__ import annotations

import re

import pytest

from bench.hotpath import main
from devtools.supervisor import ROOT


def test_it_measures_this_checkout_and_prints_microseconds_per_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(ROOT), "--turns", "1", "--batches", "20"]) == 0
    line = capsys.readouterr().out.strip()
    found = re.fullmatch(r"turn 1  (\S+): ([\d.]+) us/message \(runs ([\d.]+)-([\d.]+)\)", line)
    assert found is not None, line
    assert found[1] == str(ROOT)
    assert 0 < float(found[3]) <= float(found[2]) <= float(found[4])
