"""Turn benchmark results into a Markdown report, PNG plots and a terminal summary table.

The input is :class:`bench.results.BenchResults`, saved by the benchmark as ``results.json``.
The jobs live beside this module: :mod:`bench.analysis` groups the cases by regime and picks
the rate and the baseline to compare them with, :mod:`bench.plots` draws, :mod:`bench.markdown`
writes ``report.md`` and :mod:`bench.summary` prints the terminal table.

Run ``python -m bench.report results.json [out_dir]`` to rebuild the report from a saved file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bench.analysis import analyse
from bench.markdown import render_markdown
from bench.plots import plot_regime
from bench.results import BenchResults
from bench.summary import print_summary

__all__ = ["main", "write_report"]


def write_report(results: BenchResults, out_dir: Path) -> list[Path]:
    """Write ``out_dir/report.md`` and the PNG plots of every regime; return the paths written.

    Per regime (``<regime>`` in each name): ``latency_p99_vs_rate``, ``delivered_vs_offered``,
    ``loop_lag_p99_vs_rate``, ``ping_rtt_p99_vs_rate`` and ``cpu_per_1000``, each ``.png``; a
    plot with no data to show is not written. ``report.md`` comes last in the returned list.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {regime.name: plot_regime(regime, out_dir) for regime in analyse(results)}
    report = out_dir / "report.md"
    report.write_text(render_markdown(results, plots), encoding="utf-8")
    return [*(path for paths in plots.values() for path in paths), report]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.report results.json [out_dir]``: rebuild the report from a saved run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m bench.report results.json [out_dir]", file=sys.stderr)
        return 2
    source = Path(args[0])
    results = BenchResults.load(source)
    out_dir = Path(args[1]) if len(args) == 2 else source.parent
    for path in write_report(results, out_dir):
        print(path)
    print_summary(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
