"""The report's PNG plots, per regime: three p99s and delivered rate against offered rate, and
CPU per 1000 messages by process role.

Every plot's title names the regime, the back end and the number of clients; each case keeps
its colour and marker across a regime's plots. A plot with no data to show is not written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt

from bench.analysis import (
    LOAD_ROLES,
    ROLE_ORDER,
    Metric,
    Regime,
    cpu_by_role,
    latency_p99,
    loop_lag_p99,
    reference_step,
    steps_by_rate,
)
from bench.formatting import finite, fmt_rate

__all__ = ["caption_for", "plot_regime", "save"]


@dataclass(frozen=True)
class _LinePlot:
    stem: str
    read: Metric
    title: str
    ylabel: str
    log: bool


LATENCY = _LinePlot(
    "latency_p99_vs_rate",
    latency_p99,
    "p99 latency, SQS send → client receive",
    "p99 latency (ms, log scale)",
    True,
)
LOOP_LAG = _LinePlot(
    "loop_lag_p99_vs_rate",
    loop_lag_p99,
    "p99 server event-loop lag",
    "p99 loop lag (ms, log scale)",
    True,
)
PING_RTT = _LinePlot(
    "ping_rtt_p99_vs_rate",
    lambda step: step.ping_rtt_ms.p99,
    "p99 client ping round trip",
    "p99 ping RTT (ms, log scale)",
    True,
)

_CAPTIONS = {
    "latency_p99_vs_rate": "p99 latency vs offered rate",
    "delivered_vs_offered": "Delivered vs offered rate",
    "loop_lag_p99_vs_rate": "p99 event-loop lag vs offered rate",
    "ping_rtt_p99_vs_rate": "p99 ping round trip vs offered rate",
    "cpu_per_1000": "CPU per 1000 messages by role",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")  # 11 against 10 colours


def caption_for(path: Path) -> str:
    """What a plot file written here shows, for its alt text."""
    return next((c for stem, c in _CAPTIONS.items() if path.name.startswith(stem)), path.stem)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "regime"


def _subtitle(regime: Regime) -> str:
    return f"{regime.name} regime · backend {regime.backends} · {regime.clients}"


def _style(index: int) -> dict[str, Any]:
    """The colour and marker of a regime's ``index``-th case, the same in every plot."""
    return {"color": f"C{index % 10}", "marker": MARKERS[index % len(MARKERS)]}


def _new_figure(width: float = 9.5, height: float = 5.0) -> tuple[Any, Any]:
    return plt.subplots(figsize=(width, height), layout="constrained")


def _legend(fig: Any, title: str | None = None) -> None:
    """The legend to the right of the plot, where it hides no data."""
    fig.legend(loc="outside right upper", fontsize="small", title=title, title_fontsize="small")


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` and close it."""
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


_Points = list[tuple[float, float, bool]]  # (offered rate, value, saturated)


def _series(
    regime: Regime, read: Metric, *, positive: bool = False
) -> list[tuple[str, int, _Points]]:
    """Per case with data: label, style index and its points."""
    series = []
    for index, row in enumerate(regime.rows):
        points = [
            (step.offered_rate, y, step.is_saturated)
            for step in steps_by_rate(row.case)
            if (y := finite(read(step))) is not None and (y > 0 or not positive)
        ]
        if points:
            series.append((row.label, index, points))
    return series


def _line_plot(regime: Regime, spec: _LinePlot, out_dir: Path) -> Path | None:
    series = _series(regime, spec.read, positive=spec.log)
    if not series:
        return None

    fig, ax = _new_figure()
    for label, index, points in series:
        style = _style(index)
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)
        saturated = [p for p in points if p[2]]
        if saturated:  # a ring around each saturated step, in the line's colour
            ax.plot(
                [p[0] for p in saturated],
                [p[1] for p in saturated],
                linestyle="none",
                marker="o",
                markersize=13,
                markerfacecolor="none",
                markeredgecolor=style["color"],
            )
    if spec.log:
        ax.set_yscale("log")
    ax.set_xlabel("offered rate (msg/s)")
    ax.set_ylabel(spec.ylabel)
    ax.set_title(f"{spec.title}\n{_subtitle(regime)}", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ringed = any(p[2] for _, _, points in series for p in points)
    _legend(fig, "ringed: saturated" if ringed else None)
    return save(fig, out_dir / f"{spec.stem}_{_slug(regime.name)}.png")


def _delivered_plot(regime: Regime, out_dir: Path) -> Path | None:
    series = _series(regime, lambda step: step.delivered_rate)
    if not series:
        return None

    fig, ax = _new_figure()
    top = max(max(max(p[0], p[1]) for p in points) for _, _, points in series)
    ax.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="y = x")
    for label, index, points in series:
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label, **_style(index))
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("offered rate (msg/s)")
    ax.set_ylabel("delivered rate (msg/s per client)")
    ax.set_title(f"Delivered vs offered rate\n{_subtitle(regime)}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    _legend(fig)
    return save(fig, out_dir / f"delivered_vs_offered_{_slug(regime.name)}.png")


def _ordered_roles(per_case: Iterable[dict[str, float]]) -> list[str]:
    seen = dict.fromkeys(role for roles in per_case for role in roles)
    return [r for r in ROLE_ORDER if r in seen] + [r for r in seen if r not in ROLE_ORDER]


def _cpu_plot(regime: Regime, out_dir: Path) -> Path | None:
    bars = []
    for row in regime.rows:
        step = reference_step(row.case)
        roles = cpu_by_role(step) if step else {}
        if step is not None and roles:
            note = " (sat.)" if step.is_saturated else ""
            bars.append((f"{row.label}\n@ {fmt_rate(step.offered_rate)} msg/s{note}", roles))
    if not bars:
        return None

    fig, ax = _new_figure(max(9.5, 1.3 * len(bars) + 3.0), 5.5)
    positions = list(range(len(bars)))
    bottoms = [0.0] * len(bars)
    for role in _ordered_roles(cpu for _, cpu in bars):
        heights = [cpu.get(role, 0.0) for _, cpu in bars]
        hatch = "//" if role in LOAD_ROLES else None
        ax.bar(positions, heights, bottom=bottoms, label=role, hatch=hatch, edgecolor="white")
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(positions, [name for name, _ in bars], fontsize="small")
    ax.set_xlabel("case @ offered rate (msg/s): its highest sustained, else its lowest (sat.)")
    ax.set_ylabel("CPU seconds per 1000 messages (s)")
    ax.set_title(
        f"CPU per 1000 messages by process role, at each case's highest sustained rate\n"
        f"{_subtitle(regime)} · hatched: load generation",
        fontsize="medium",
    )
    ax.grid(True, axis="y", alpha=0.3)
    _legend(fig, "process role")
    return save(fig, out_dir / f"cpu_per_1000_{_slug(regime.name)}.png")


def plot_regime(regime: Regime, out_dir: Path) -> list[Path]:
    """Every plot of one regime that has data, in the order the report shows them.

    Files are named ``<stem>_<regime>.png``, stems ``latency_p99_vs_rate``,
    ``delivered_vs_offered``, ``loop_lag_p99_vs_rate``, ``ping_rtt_p99_vs_rate`` and
    ``cpu_per_1000``.
    """
    made = [
        _line_plot(regime, LATENCY, out_dir),
        _delivered_plot(regime, out_dir),
        _line_plot(regime, LOOP_LAG, out_dir),
        _line_plot(regime, PING_RTT, out_dir),
        _cpu_plot(regime, out_dir),
    ]
    return [path for path in made if path is not None]
