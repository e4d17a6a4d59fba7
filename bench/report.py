"""Turn benchmark results into a Markdown report, PNG plots and a terminal summary table.

The input is the results dict that the benchmark saves as ``results.json``: ``meta`` about the
run and a list of ``cases`` (one design under one load regime), each with the ``steps`` of its
offered-rate ramp. Optional keys may be missing or ``None``; they show as "—".

Cases in a regime are compared at one *comparison rate*: the highest offered rate that every
case sustained without saturation (or, if there is none, the lowest rate offered), and against
the ``process`` case with the same number of consumers.

Run ``python -m bench.report results.json [out_dir]`` to rebuild the report from a saved file.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt
from rich import box
from rich.console import Console
from rich.table import Table

__all__ = [
    "comparison_rate",
    "print_summary",
    "ratio",
    "summary_table",
    "write_report",
]

DASH = "—"
#: Process roles that generate or host the load rather than relay it; left out of "total" CPU.
LOAD_ROLES = frozenset({"sqs", "clients", "producer"})
#: Order of the roles in tables and stacked bars; other roles follow in the order met.
ROLE_ORDER = ("server", "workers", "sqs", "clients", "producer")
BASELINE_MODE = "process"


# --------------------------------------------------------------------------- small helpers


def _num(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, or not finite."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def ratio(a: Any, b: Any) -> float | None:
    """``a / b``, or None when either is missing (or not a finite number) or ``b`` is 0."""
    x, y = _num(a), _num(b)
    if x is None or y is None or y == 0:
        return None
    return x / y


def fmt(value: Any, digits: int = 1, *, thousands: bool = False) -> str:
    """``value`` with ``digits`` decimals (and thousands separators), or "—" when missing."""
    number = _num(value)
    if number is None:
        return DASH
    return f"{number:,.{digits}f}" if thousands else f"{number:.{digits}f}"


def _fmt_rate(value: Any) -> str:
    return fmt(value, 0, thousands=True)


def _fmt_ratio(value: float | None) -> str:
    return fmt(value, 2)


def _is_saturated(step: Mapping[str, Any]) -> bool:
    return bool(step.get("saturated"))


def _rate(step: Mapping[str, Any]) -> float | None:
    return _num(step.get("offered_rate"))


def _steps(case: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The case's steps that have an offered rate, lowest rate first."""
    steps = case.get("steps") or []
    return sorted(
        (s for s in steps if isinstance(s, Mapping) and _rate(s) is not None),
        key=lambda s: _rate(s) or 0.0,
    )


def _same_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _comparison(case_steps: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[float | None, bool]:
    """The comparison rate and whether every case sustained it without saturation."""
    per_case = [[s for s in steps if _rate(s) is not None] for steps in case_steps]
    per_case = [steps for steps in per_case if steps]  # a case with no steps cannot vote
    if not per_case:
        return None, False

    def rates(steps: list[Any], *, sustained_only: bool) -> set[float]:
        return {float(_rate(s) or 0.0) for s in steps if not (sustained_only and _is_saturated(s))}

    sustained = set.intersection(*(rates(s, sustained_only=True) for s in per_case))
    if sustained:
        return max(sustained), True
    offered_by_all = set.intersection(*(rates(s, sustained_only=False) for s in per_case))
    if offered_by_all:
        return min(offered_by_all), False
    return min(set.union(*(rates(s, sustained_only=False) for s in per_case))), False


def comparison_rate(case_steps: Sequence[Sequence[Mapping[str, Any]]]) -> float | None:
    """The offered rate at which to compare cases, given each case's list of steps.

    The highest offered rate that every case reached without saturation; if there is none, the
    lowest rate that every case offered (or, failing that, the lowest rate any case offered).
    Cases with no steps are ignored; None when no case has a step.
    """
    return _comparison(case_steps)[0]


def step_at(steps: Iterable[Mapping[str, Any]], rate: float | None) -> Mapping[str, Any] | None:
    """The step offered at ``rate``, or None."""
    if rate is None:
        return None
    for step in steps:
        offered = _rate(step)
        if offered is not None and _same_rate(offered, rate):
            return step
    return None


def max_sustained_rate(case: Mapping[str, Any]) -> float:
    """The case's ``max_sustained_rate``, or else its highest non-saturated offered rate (or 0)."""
    given = _num(case.get("max_sustained_rate"))
    if given is not None:
        return given
    rates = [_rate(s) or 0.0 for s in _steps(case) if not _is_saturated(s)]
    return max(rates, default=0.0)


def reference_step(case: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The step at the case's highest non-saturated rate, else its lowest-rate step."""
    steps = _steps(case)
    sustained = [s for s in steps if not _is_saturated(s)]
    if sustained:
        return sustained[-1]
    return steps[0] if steps else None


def _roles(cpu: Any) -> dict[str, float]:
    if not isinstance(cpu, Mapping):
        return {}
    return {str(k): v for k, v in ((k, _num(v)) for k, v in cpu.items()) if v is not None}


def cpu_total(step: Mapping[str, Any] | None) -> float | None:
    """CPU seconds per 1000 messages of the relay itself: every role but the load generators."""
    if step is None:
        return None
    relay = [v for role, v in _roles(step.get("cpu_s_per_1000")).items() if role not in LOAD_ROLES]
    return sum(relay) if relay else None


def case_label(case: Mapping[str, Any]) -> str:
    """The case's display label, or one made from its mode and consumer count."""
    label = case.get("label")
    if label:
        return str(label)
    mode = str(case.get("mode") or "?")
    consumers = _num(case.get("consumers"))
    return f"{mode} x{consumers:.0f}" if consumers is not None and consumers > 1 else mode


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "regime"


def _md(text: Any) -> str:
    """Text that is safe inside a Markdown table cell or list item (one line, no bare pipes)."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class _Row:
    case: Mapping[str, Any]
    label: str
    step: Mapping[str, Any] | None  # the step at the comparison rate
    baseline: _Row | None

    @property
    def max_rate(self) -> float:
        return max_sustained_rate(self.case)

    def metric(self, *keys: str) -> float | None:
        return _num(_get(self.step, *keys))

    def vs_baseline(self, *keys: str) -> float | None:
        if self.baseline is None:
            return None
        return ratio(self.metric(*keys), self.baseline.metric(*keys))

    @property
    def max_rate_ratio(self) -> float | None:
        return None if self.baseline is None else ratio(self.max_rate, self.baseline.max_rate)


@dataclass(frozen=True)
class _Regime:
    name: str
    cases: list[Mapping[str, Any]]
    rate: float | None
    all_sustained: bool
    rows: list[_Row]

    def describe(self, key: str, unit: str = "") -> str:
        """The cases' value of ``key`` ("fast", "5 clients"), their range, or all of them."""
        values = [c.get(key) for c in self.cases if c.get(key) is not None]
        numbers = [n for n in map(_num, values) if n is not None]
        if values and len(numbers) == len(values):
            low, high = min(numbers), max(numbers)
            text = f"{low:,.0f}" if low == high else f"{low:,.0f} to {high:,.0f}"
        else:
            text = "/".join(dict.fromkeys(map(str, values))) or "?"
        return f"{text} {unit}".strip()


def _baseline_for(case: Mapping[str, Any], candidates: list[_Row]) -> _Row | None:
    """The process row with the same consumers (and backend if possible), else the first one."""
    if not candidates:
        return None

    def same(row: _Row, key: str) -> bool:
        return row.case.get(key) == case.get(key)

    for wanted in (("consumers", "backend"), ("consumers",), ("backend",)):
        for row in candidates:
            if all(same(row, key) for key in wanted):
                return row
    return candidates[0]


def _analyse(results: Mapping[str, Any]) -> list[_Regime]:
    cases = [c for c in results.get("cases") or [] if isinstance(c, Mapping)]
    names = list(dict.fromkeys(str(c.get("regime") or "default") for c in cases))
    regimes = []
    for name in names:
        members = [c for c in cases if str(c.get("regime") or "default") == name]
        rate, all_sustained = _comparison([_steps(c) for c in members])
        multi_backend = len({c.get("backend") for c in members}) > 1

        def label(case: Mapping[str, Any], multi_backend: bool = multi_backend) -> str:
            text = case_label(case)
            return f"{text} [{case.get('backend')}]" if multi_backend else text

        base_rows = [
            _Row(c, label(c), step_at(_steps(c), rate), None)
            for c in members
            if c.get("mode") == BASELINE_MODE
        ]
        rows = [
            _Row(c, label(c), step_at(_steps(c), rate), _baseline_for(c, base_rows))
            for c in members
        ]
        regimes.append(_Regime(name, members, rate, all_sustained, rows))
    return regimes


# --------------------------------------------------------------------------- plots


@dataclass(frozen=True)
class _LinePlot:
    stem: str
    keys: tuple[str, ...]
    title: str
    ylabel: str
    log: bool


LINE_PLOTS = (
    _LinePlot(
        "latency_p99_vs_rate",
        ("latency_ms", "p99"),
        "p99 latency, SQS send → client receive",
        "p99 latency (ms, log scale)",
        True,
    ),
    _LinePlot(
        "loop_lag_p99_vs_rate",
        ("loop_lag_ms", "p99"),
        "p99 server event-loop lag",
        "p99 loop lag (ms, log scale)",
        True,
    ),
    _LinePlot(
        "ping_rtt_p99_vs_rate",
        ("ping_rtt_ms", "p99"),
        "p99 client ping round trip",
        "p99 ping RTT (ms, log scale)",
        True,
    ),
)


def _subtitle(regime: _Regime) -> str:
    return (
        f"{regime.name} regime · backend {regime.describe('backend')} · "
        f"{regime.describe('clients', 'clients')}"
    )


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _style(index: int) -> dict[str, Any]:
    """The colour and marker of a regime's ``index``-th case, the same in every plot."""
    return {"color": f"C{index % 10}", "marker": MARKERS[index % len(MARKERS)]}


def _new_figure(width: float = 9.5, height: float = 5.0) -> tuple[Any, Any]:
    return plt.subplots(figsize=(width, height), layout="constrained")


def _legend(fig: Any, title: str | None = None) -> None:
    """The legend to the right of the plot, where it hides no data."""
    fig.legend(loc="outside right upper", fontsize="small", title=title, title_fontsize="small")


def _save(fig: Any, path: Path) -> Path:
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def _series(
    regime: _Regime, value: Any, *, positive: bool = False
) -> list[tuple[str, int, list[tuple[float, float, bool]]]]:
    """Per case with data: label, style index and (offered rate, value, saturated) points."""
    series = []
    for index, row in enumerate(regime.rows):
        points = [
            (rate, y, _is_saturated(s))
            for s in _steps(row.case)
            if (rate := _rate(s)) is not None
            and (y := _num(value(s))) is not None
            and (y > 0 or not positive)
        ]
        if points:
            series.append((row.label, index, points))
    return series


def _line_plot(regime: _Regime, spec: _LinePlot, out_dir: Path) -> Path | None:
    series = _series(regime, lambda s: _get(s, *spec.keys), positive=spec.log)
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
    return _save(fig, out_dir / f"{spec.stem}_{_slug(regime.name)}.png")


def _delivered_plot(regime: _Regime, out_dir: Path) -> Path | None:
    series = _series(regime, lambda s: s.get("delivered_rate"))
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
    return _save(fig, out_dir / f"delivered_vs_offered_{_slug(regime.name)}.png")


def _ordered_roles(per_case: Iterable[dict[str, float]]) -> list[str]:
    seen = dict.fromkeys(role for roles in per_case for role in roles)
    return [r for r in ROLE_ORDER if r in seen] + [r for r in seen if r not in ROLE_ORDER]


def _cpu_plot(regime: _Regime, out_dir: Path) -> Path | None:
    bars = []
    for row in regime.rows:
        step = reference_step(row.case)
        roles = _roles(step.get("cpu_s_per_1000")) if step else {}
        if step is not None and roles:
            note = " (sat.)" if _is_saturated(step) else ""
            bars.append((f"{row.label}\n@ {_fmt_rate(_rate(step))} msg/s{note}", roles))
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
    return _save(fig, out_dir / f"cpu_per_1000_{_slug(regime.name)}.png")


def _plots(regime: _Regime, out_dir: Path) -> list[Path]:
    """Every plot of one regime that has data, in the order the report shows them."""
    made = [
        _line_plot(regime, LINE_PLOTS[0], out_dir),
        _delivered_plot(regime, out_dir),
        _line_plot(regime, LINE_PLOTS[1], out_dir),
        _line_plot(regime, LINE_PLOTS[2], out_dir),
        _cpu_plot(regime, out_dir),
    ]
    return [path for path in made if path is not None]


# --------------------------------------------------------------------------- Markdown


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has one letter per column (l or r), default right."""
    align = align.ljust(len(header), "r")
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _duration(seconds: Any) -> str:
    value = _num(seconds)
    if value is None:
        return DASH
    return f"{value:,.0f} s ({value / 60:.1f} min)" if value >= 60 else f"{value:.1f} s"


def _header(results: Mapping[str, Any]) -> list[str]:
    meta = results.get("meta") or {}
    backend = str(meta.get("backend") or DASH)
    delay = _num(meta.get("backend_delay_ms"))
    if delay:
        backend += f" (+{delay:g} ms per SQS call)"
    quick = meta.get("quick")
    lines = ["# SQS push relay benchmark", ""]
    command = meta.get("command")
    if command:
        lines += ["Reproduce with:", "", "```sh", str(command), "```", ""]
    lines += _table(
        ["Run", "Value"],
        [
            ["Command", f"`{_md(command)}`" if command else DASH],
            ["Machine", _md(meta.get("machine") or DASH)],
            ["CPUs", _md(meta.get("cpus") if meta.get("cpus") is not None else DASH)],
            ["Python", _md(meta.get("python") or DASH)],
            ["Backend", _md(backend)],
            ["Date", _md(meta.get("started") or DASH)],
            ["Duration", _duration(meta.get("duration_s"))],
            ["Quick run", DASH if quick is None else ("yes" if quick else "no")],
        ],
        "ll",
    )
    return [*lines, ""]


REGIME_HEADER = (
    "Case",
    "Mode",
    "Consumers",
    "Max sustained (msg/s)",
    "p50 latency (ms)",
    "p99 latency (ms)",
    "p99 loop lag (ms)",
    "p99 ping RTT (ms)",
    "CPU server (s/1k)",
    "CPU workers (s/1k)",
    "CPU total (s/1k)",
    "Peak server RSS (MB)",
    "p99 latency / process",
    "loop lag p99 / process",
    "max rate / process",
)


def _regime_row(row: _Row) -> list[str]:
    label = _md(row.label)
    if row.step is not None and _is_saturated(row.step):
        label += " (saturated)"
    consumers = _num(row.case.get("consumers"))
    return [
        label,
        _md(row.case.get("mode") or DASH),
        fmt(consumers, 0),
        _fmt_rate(row.max_rate),
        fmt(row.metric("latency_ms", "p50")),
        fmt(row.metric("latency_ms", "p99")),
        fmt(row.metric("loop_lag_ms", "p99")),
        fmt(row.metric("ping_rtt_ms", "p99")),
        fmt(row.metric("cpu_s_per_1000", "server"), 2),
        fmt(row.metric("cpu_s_per_1000", "workers"), 2),
        fmt(cpu_total(row.step), 2),
        fmt(row.metric("peak_rss_mb", "server")),
        _fmt_ratio(row.vs_baseline("latency_ms", "p99")),
        _fmt_ratio(row.vs_baseline("loop_lag_ms", "p99")),
        _fmt_ratio(row.max_rate_ratio),
    ]


def _regime_section(regime: _Regime, plots: Sequence[Path]) -> list[str]:
    lines = [f"## Regime: {_md(regime.name)}", ""]
    lines.append(
        f"{len(regime.cases)} cases; backend {_md(regime.describe('backend'))}; "
        f"{_md(regime.describe('clients', 'clients'))}."
    )
    if regime.rate is None:
        lines.append("No case has any step, so there is nothing to compare.")
    elif regime.all_sustained:
        lines.append(
            f"Compared at **{_fmt_rate(regime.rate)} msg/s**, the highest offered rate that "
            "every case sustained without saturation."
        )
    else:
        lines.append(
            f"No offered rate was sustained by every case, so they are compared at the lowest "
            f"rate, **{_fmt_rate(regime.rate)} msg/s**, where cases marked (saturated) were "
            "already saturated."
        )
    lines.append("")
    lines += _table(REGIME_HEADER, (_regime_row(r) for r in regime.rows), "ll")
    lines.append("")

    if not any(r.baseline for r in regime.rows):
        lines += ["No `process` case in this regime, so the ratio columns are empty.", ""]
    else:
        mismatched = [
            r
            for r in regime.rows
            if r.baseline is not None
            and r.baseline.case.get("consumers") != r.case.get("consumers")
        ]
        for row in mismatched:
            consumers = fmt(_num(row.case.get("consumers")), 0)
            baseline = row.baseline.label if row.baseline else DASH
            lines.append(
                f"- No `process` case with {consumers} consumers: "
                f"{_md(row.label)} is compared with {_md(baseline)}."
            )
        if mismatched:
            lines.append("")
    for path in plots:
        lines += [f"![{_caption_for(path)}, {_md(regime.name)}]({path.name})", ""]
    return lines


STEP_HEADER = (
    "Offered (msg/s)",
    "Duration (s)",
    "Sent",
    "Delivered",
    "Delivered (msg/s)",
    "p50 (ms)",
    "p95 (ms)",
    "p99 (ms)",
    "max (ms)",
    "Worker p99 (ms)",
    "Loop lag p99 (ms)",
    "Loop lag max (ms)",
    "Ping p99 (ms)",
    "CPU server (s/1k)",
    "CPU workers (s/1k)",
    "CPU total (s/1k)",
    "RSS server (MB)",
    "RSS workers (MB)",
    "Queue max",
    "Dups",
    "Errors",
    "Saturated",
)


def _step_row(step: Mapping[str, Any]) -> list[str]:
    def m(*keys: str, digits: int = 1) -> str:
        return fmt(_get(step, *keys), digits)

    errors = step.get("errors")
    saturated = step.get("saturated")
    return [
        _fmt_rate(step.get("offered_rate")),
        m("duration_s"),
        fmt(step.get("sent"), 0, thousands=True),
        fmt(step.get("delivered"), 0, thousands=True),
        _fmt_rate(step.get("delivered_rate")),
        m("latency_ms", "p50"),
        m("latency_ms", "p95"),
        m("latency_ms", "p99"),
        m("latency_ms", "max"),
        m("worker_latency_ms", "p99"),
        m("loop_lag_ms", "p99"),
        m("loop_lag_ms", "max"),
        m("ping_rtt_ms", "p99"),
        m("cpu_s_per_1000", "server", digits=2),
        m("cpu_s_per_1000", "workers", digits=2),
        fmt(cpu_total(step), 2),
        m("peak_rss_mb", "server"),
        m("peak_rss_mb", "workers"),
        fmt(step.get("queue_depth_max"), 0, thousands=True),
        fmt(step.get("duplicates"), 0, thousands=True),
        str(len(errors)) if isinstance(errors, list) else DASH,
        DASH if saturated is None else ("**yes**" if saturated else "no"),
    ]


MAX_ERRORS_LISTED = 20
MAX_ERROR_CHARS = 300


def _case_section(regime: _Regime, row: _Row) -> list[str]:
    case = row.case
    lines = [f"### {_md(regime.name)}: {_md(row.label)}", ""]
    lines.append(
        f"Mode `{_md(case.get('mode') or DASH)}`, {fmt(_num(case.get('consumers')), 0)} "
        f"consumer(s), {fmt(_num(case.get('clients')), 0, thousands=True)} clients, backend "
        f"{_md(case.get('backend') or DASH)}; max sustained rate "
        f"**{_fmt_rate(row.max_rate)} msg/s**."
    )
    lines.append("")
    steps = _steps(case)
    if steps:
        lines += [*_table(STEP_HEADER, (_step_row(s) for s in steps)), ""]
    else:
        lines += ["No steps recorded.", ""]

    notes = [n for n in case.get("notes") or [] if str(n).strip()]
    if notes:
        lines += ["Notes:", "", *(f"- {_md(n)}" for n in notes), ""]

    # Identical errors from several steps are listed once, with the rates they occurred at.
    errors: dict[str, list[str]] = {}
    for step in steps:
        for error in step.get("errors") or []:
            text = _md(error)
            if len(text) > MAX_ERROR_CHARS:
                text = text[: MAX_ERROR_CHARS - 1] + "…"
            errors.setdefault(text, []).append(_fmt_rate(step.get("offered_rate")))
    if errors:
        lines += ["Errors:", ""]
        for text, rates in list(errors.items())[:MAX_ERRORS_LISTED]:
            where = ", ".join(dict.fromkeys(rates))
            times = f" ({len(rates)} times)" if len(rates) > 1 else ""
            code = text.replace("`", "'")
            lines.append(f"- at {where} msg/s{times}: `{code}`")
        if len(errors) > MAX_ERRORS_LISTED:
            lines.append(f"- … and {len(errors) - MAX_ERRORS_LISTED} more distinct errors")
        lines.append("")
    return lines


HOW_TO_READ = """\
## How to read this

Latency is measured from the producer's SQS send to the moment a client receives the message;
worker latency starts when a worker has received it from SQS. Loop lag is how late the server's
event loop runs a timer (a probe inside the server), and ping RTT is a round trip a client makes
to the server while the load runs: both show how much the relay's consumer slows down every
client, not just the ones receiving messages. A step is *saturated* when the relay could not
keep up with the offered rate (delivery fell behind or the queue kept growing), and the max
sustained rate is the highest offered rate of a non-saturated step.

Each regime's table compares all cases at one rate, named above it. The ratio columns divide a
case's value by that of the `process` case with the same number of consumers (the design of this
repository): for latency and loop lag a ratio below 1 means lower (better) than process mode and
above 1 means higher (worse); for max rate a ratio above 1 means the case sustained a higher rate
than process mode. CPU is in seconds of CPU time per 1000 delivered messages; "total" adds every
process of the relay (server, workers and any others) but leaves out the load generators (SQS,
clients, producer), which the plots show hatched. "—" means the value was not measured or does
not apply (for example worker CPU in modes that consume inside the server).
"""


def render_markdown(
    results: Mapping[str, Any], plots: Mapping[str, list[Path]] | None = None
) -> str:
    """The report as Markdown; ``plots`` maps each regime name to its plot files, to embed."""
    regimes = _analyse(results)
    plot_files = plots or {}
    lines = _header(results)
    if not regimes:
        lines += ["No cases were run.", ""]
    for regime in regimes:
        lines += _regime_section(regime, plot_files.get(regime.name, []))
    if regimes:
        lines += ["## Cases", ""]
    for regime in regimes:
        for row in regime.rows:
            lines += _case_section(regime, row)
    lines.append(HOW_TO_READ)
    return "\n".join(lines)


_CAPTIONS = {
    "latency_p99_vs_rate": "p99 latency vs offered rate",
    "delivered_vs_offered": "Delivered vs offered rate",
    "loop_lag_p99_vs_rate": "p99 event-loop lag vs offered rate",
    "ping_rtt_p99_vs_rate": "p99 ping round trip vs offered rate",
    "cpu_per_1000": "CPU per 1000 messages by role",
}


def _caption_for(path: Path) -> str:
    return next((c for stem, c in _CAPTIONS.items() if path.name.startswith(stem)), path.stem)


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``out_dir/report.md`` and the PNG plots of every regime; return the paths written.

    Per regime (``<regime>`` in each name): ``latency_p99_vs_rate``, ``delivered_vs_offered``,
    ``loop_lag_p99_vs_rate``, ``ping_rtt_p99_vs_rate`` and ``cpu_per_1000``, each ``.png``; a
    plot with no data to show is not written. ``report.md`` comes last in the returned list.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plots: dict[str, list[Path]] = {}
    for regime in _analyse(results):
        paths = _plots(regime, out_dir)
        plots[regime.name] = paths
        written += paths
    report = out_dir / "report.md"
    report.write_text(render_markdown(results, plots), encoding="utf-8")
    written.append(report)
    return written


# --------------------------------------------------------------------------- terminal


def _styled_ratio(value: float | None, *, higher_is_better: bool = False) -> str:
    text = _fmt_ratio(value)
    if value is None or math.isclose(value, 1.0, rel_tol=0.05):
        return text
    better = (value > 1) == higher_is_better
    return f"[{'green' if better else 'red'}]{text}[/]"


def summary_table(results: dict[str, Any]) -> Table:
    """A compact table of every case: max rate, p99s at the comparison rate, ratios vs process."""
    regimes = _analyse(results)
    table = Table(
        title="Benchmark summary: p99 latency (lat) and event-loop lag at the compared "
        "rate (@); max rate; ÷ proc = case / process mode",
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
    table.add_column("Lat\n÷ proc", justify="right")
    table.add_column("Lag\n÷ proc", justify="right")
    table.add_column("Rate\n÷ proc", justify="right")
    for regime in regimes:
        at = f"@ {_fmt_rate(regime.rate)}/s" + ("" if regime.all_sustained else "*")
        names = [regime.name, f"[dim]{at}[/]"] if regime.rate is not None else [regime.name]
        for index, row in enumerate(regime.rows):
            saturated = row.step is not None and _is_saturated(row.step)
            if index == len(regime.rows) - 1:  # a one-case regime: both in one cell
                names = ["\n".join(names[index:])]
            table.add_row(
                names[index] if index < len(names) else "",
                row.label + (" [yellow](sat.)[/]" if saturated else ""),
                _fmt_rate(row.max_rate),
                fmt(row.metric("latency_ms", "p99")),
                fmt(row.metric("loop_lag_ms", "p99")),
                _styled_ratio(row.vs_baseline("latency_ms", "p99")),
                _styled_ratio(row.vs_baseline("loop_lag_ms", "p99")),
                _styled_ratio(row.max_rate_ratio, higher_is_better=True),
                end_section=index == len(regime.rows) - 1,
            )
    if any(not r.all_sustained and r.rate is not None for r in regimes):
        table.caption = "* no rate was sustained by every case; compared at the lowest rate"
        table.caption_justify = "left"
    return table


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`summary_table` to ``console`` (a new one on stdout by default)."""
    (console or Console()).print(summary_table(results))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.report results.json [out_dir]``: rebuild the report from a saved run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m bench.report results.json [out_dir]", file=sys.stderr)
        return 2
    source = Path(args[0])
    results = json.loads(source.read_text(encoding="utf-8"))
    out_dir = Path(args[1]) if len(args) == 2 else source.parent
    for path in write_report(results, out_dir):
        print(path)
    print_summary(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
