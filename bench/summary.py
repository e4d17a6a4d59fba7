"""The terminal summary: one compact table of every case, printed at the end of a run.

Per case: its max sustained rate, its p99 latency and event-loop lag at the regime's
comparison rate, and those three as ratios to the regime's baseline (the minimal relay, or
process mode in runs without one), green when better and red when worse (by more than 5%).
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table

from bench.analysis import Row, analyse, latency_p99, loop_lag_p99
from bench.formatting import fmt, fmt_rate, fmt_ratio
from bench.results import BenchResults

__all__ = ["print_summary", "summary_table"]


def _styled_ratio(value: float | None, *, higher_is_better: bool = False) -> str:
    text = fmt_ratio(value)
    if value is None or math.isclose(value, 1.0, rel_tol=0.05):
        return text
    better = (value > 1) == higher_is_better
    return f"[{'green' if better else 'red'}]{text}[/]"


def _case_cells(row: Row) -> list[str]:
    saturated = row.step is not None and row.step.is_saturated
    return [
        row.label + (" [yellow](sat.)[/]" if saturated else ""),
        fmt_rate(row.max_rate),
        fmt(row.metric(latency_p99)),
        fmt(row.metric(loop_lag_p99)),
        _styled_ratio(row.vs_baseline(latency_p99)),
        _styled_ratio(row.vs_baseline(loop_lag_p99)),
        _styled_ratio(row.max_rate_ratio, higher_is_better=True),
    ]


def summary_table(results: BenchResults) -> Table:
    """A compact table of every case: max rate, p99s at the comparison rate, ratios vs the
    baseline."""
    regimes = analyse(results)
    table = Table(
        title="Benchmark summary: p99 latency (lat) and event-loop lag at the compared "
        "rate (@); max rate; ÷ base = case / the regime's baseline (minimal, else process)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # fits 80 columns
    )
    labels = [r.label for regime in regimes for r in regime.rows] or [""]
    table.add_column("Regime", no_wrap=True)
    table.add_column("Case", min_width=min(16, max(map(len, labels))))
    table.add_column("Max\nmsg/s", justify="right")
    table.add_column("p99 lat\nms", justify="right")
    table.add_column("p99 lag\nms", justify="right")
    table.add_column("Lat\n÷ base", justify="right")
    table.add_column("Lag\n÷ base", justify="right")
    table.add_column("Rate\n÷ base", justify="right")
    for regime in regimes:
        at = f"@ {fmt_rate(regime.rate)}/s" + ("" if regime.all_sustained else "*")
        names = [regime.name, f"[dim]{at}[/]"] if regime.rate is not None else [regime.name]
        for index, row in enumerate(regime.rows):
            last = index == len(regime.rows) - 1
            if last:  # the names not shown yet go in the last row's cell
                names = [*names[:index], "\n".join(names[index:])]
            name = names[index] if index < len(names) else ""
            table.add_row(name, *_case_cells(row), end_section=last)
    if any(not r.all_sustained and r.rate is not None for r in regimes):
        table.caption = "* no rate was sustained by every case; compared at the lowest rate"
        table.caption_justify = "left"
    return table


def print_summary(results: BenchResults, console: Console | None = None) -> None:
    """Print :func:`summary_table` to ``console`` (a new one on stdout by default)."""
    (console or Console()).print(summary_table(results))
