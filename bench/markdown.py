"""The report as Markdown: how the run was made, one comparison table per regime (with its
plots), then every case's steps, notes and errors, and how to read it all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.analysis import (
    Regime,
    Row,
    analyse,
    cpu_total,
    latency_p99,
    loop_lag_p99,
    steps_by_rate,
)
from bench.formatting import DASH, finite, fmt, fmt_rate, fmt_ratio
from bench.plots import caption_for
from bench.results import BenchResults, RunMeta, StepResult

__all__ = ["render_markdown"]

MAX_ERRORS_LISTED = 20
MAX_ERROR_CHARS = 300


def _md(text: Any) -> str:
    """Text that is safe inside a Markdown table cell or list item (one line, no bare pipes)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` has one letter per column (l or r), default right."""
    align = align.ljust(len(header), "r")
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _duration(seconds: float | None) -> str:
    value = finite(seconds)
    if value is None:
        return DASH
    return f"{value:,.0f} s ({value / 60:.1f} min)" if value >= 60 else f"{value:.1f} s"


def _yes_no(flag: bool | None, yes: str = "yes") -> str:
    return DASH if flag is None else (yes if flag else "no")


def _header(meta: RunMeta) -> list[str]:
    backend = meta.backend or DASH
    delay = finite(meta.backend_delay_ms)
    if delay:
        backend += f" (+{delay:g} ms per SQS call)"
    lines = ["# SQS push relay benchmark", ""]
    if meta.command:
        lines += ["Reproduce with:", "", "```sh", meta.command, "```", ""]
    lines += _table(
        ["Run", "Value"],
        [
            ["Command", f"`{_md(meta.command)}`" if meta.command else DASH],
            ["Machine", _md(meta.machine or DASH)],
            ["CPUs", _md(meta.cpus if meta.cpus is not None else DASH)],
            ["Python", _md(meta.python or DASH)],
            ["Backend", _md(backend)],
            ["Date", _md(meta.started or DASH)],
            ["Duration", _duration(meta.duration_s)],
            ["Quick run", _yes_no(meta.quick)],
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
    "Worker→client p99 @ half max (ms)",
    "p99 loop lag (ms)",
    "p99 ping RTT (ms)",
    "CPU server (s/1k)",
    "CPU workers (s/1k)",
    "CPU total (s/1k)",
    "Peak server RSS (MB)",
    "p99 latency / {base}",
    "loop lag p99 / {base}",
    "max rate / {base}",
)


def _regime_row(row: Row) -> list[str]:
    label = _md(row.label)
    if row.step is not None and row.step.is_saturated:
        label += " (saturated)"
    return [
        label,
        _md(row.case.mode),
        fmt(row.case.consumers, 0),
        fmt_rate(row.max_rate),
        fmt(row.metric(lambda s: s.latency_ms.p50)),
        fmt(row.metric(latency_p99)),
        fmt(row.pipeline_p99),
        fmt(row.metric(loop_lag_p99)),
        fmt(row.metric(lambda s: s.ping_rtt_ms.p99)),
        fmt(row.metric(lambda s: s.cpu_s_per_1000.get("server")), 2),
        fmt(row.metric(lambda s: s.cpu_s_per_1000.get("workers")), 2),
        fmt(cpu_total(row.step), 2),
        fmt(row.metric(lambda s: s.peak_rss_mb.get("server"))),
        fmt_ratio(row.vs_baseline(latency_p99)),
        fmt_ratio(row.vs_baseline(loop_lag_p99)),
        fmt_ratio(row.max_rate_ratio),
    ]


def _comparison_sentence(regime: Regime) -> str:
    if regime.rate is None:
        return "No case has any step, so there is nothing to compare."
    if regime.all_sustained:
        return (
            f"Compared at **{fmt_rate(regime.rate)} msg/s**, the highest offered rate that "
            "every case sustained without saturation."
        )
    return (
        f"No offered rate was sustained by every case, so they are compared at the lowest "
        f"rate, **{fmt_rate(regime.rate)} msg/s**, where cases marked (saturated) were "
        "already saturated."
    )


def _baseline_notes(regime: Regime) -> list[str]:
    """Which cases had no baseline case with their consumer count to compare with."""
    base = regime.baseline_mode
    if not any(r.baseline for r in regime.rows):
        return [f"No `{base}` case in this regime, so the ratio columns are empty.", ""]
    lines = [
        f"- No `{base}` case with {fmt(row.case.consumers, 0)} consumers: "
        f"{_md(row.label)} is compared with {_md(row.baseline.label)}."
        for row in regime.rows
        if row.baseline is not None and row.baseline.case.consumers != row.case.consumers
    ]
    return [*lines, ""] if lines else []


def _regime_section(regime: Regime, plots: Sequence[Path]) -> list[str]:
    lines = [f"## Regime: {_md(regime.name)}", ""]
    lines.append(
        f"{len(regime.cases)} cases; backend {_md(regime.backends)}; {_md(regime.clients)}."
    )
    lines += [_comparison_sentence(regime), ""]
    header = [h.format(base=regime.baseline_mode) for h in REGIME_HEADER]
    lines += _table(header, (_regime_row(r) for r in regime.rows), "ll")
    lines.append("")
    lines += _baseline_notes(regime)
    for path in plots:
        lines += [f"![{caption_for(path)}, {_md(regime.name)}]({path.name})", ""]
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


def _step_row(step: StepResult) -> list[str]:
    def count(value: float | None) -> str:
        return fmt(value, 0, thousands=True)

    return [
        fmt_rate(step.offered_rate),
        fmt(step.duration_s),
        count(step.sent),
        count(step.delivered),
        fmt_rate(step.delivered_rate),
        fmt(step.latency_ms.p50),
        fmt(step.latency_ms.p95),
        fmt(step.latency_ms.p99),
        fmt(step.latency_ms.max),
        fmt(step.worker_latency_ms.p99),
        fmt(step.loop_lag_ms.p99),
        fmt(step.loop_lag_ms.max),
        fmt(step.ping_rtt_ms.p99),
        fmt(step.cpu_s_per_1000.get("server"), 2),
        fmt(step.cpu_s_per_1000.get("workers"), 2),
        fmt(cpu_total(step), 2),
        fmt(step.peak_rss_mb.get("server")),
        fmt(step.peak_rss_mb.get("workers")),
        count(step.queue_depth_max),
        count(step.duplicates),
        DASH if step.errors is None else str(len(step.errors)),
        _yes_no(step.saturated, yes="**yes**"),
    ]


def _errors_list(steps: Sequence[StepResult]) -> list[str]:
    """Every distinct error of the case's steps, once, with the rates it occurred at."""
    errors: dict[str, list[str]] = {}
    for step in steps:
        for error in step.errors or []:
            text = _md(error)
            if len(text) > MAX_ERROR_CHARS:
                text = text[: MAX_ERROR_CHARS - 1] + "…"
            errors.setdefault(text, []).append(fmt_rate(step.offered_rate))
    if not errors:
        return []
    lines = ["Errors:", ""]
    for text, rates in list(errors.items())[:MAX_ERRORS_LISTED]:
        where = ", ".join(dict.fromkeys(rates))
        times = f" ({len(rates)} times)" if len(rates) > 1 else ""
        code = text.replace("`", "'")
        lines.append(f"- at {where} msg/s{times}: `{code}`")
    if len(errors) > MAX_ERRORS_LISTED:
        lines.append(f"- … and {len(errors) - MAX_ERRORS_LISTED} more distinct errors")
    return [*lines, ""]


def _case_section(regime: Regime, row: Row) -> list[str]:
    case = row.case
    lines = [f"### {_md(regime.name)}: {_md(row.label)}", ""]
    lines.append(
        f"Mode `{_md(case.mode)}`, {fmt(case.consumers, 0)} consumer(s), "
        f"{fmt(case.clients, 0, thousands=True)} clients, backend {_md(case.backend or DASH)}; "
        f"max sustained rate **{fmt_rate(row.max_rate)} msg/s**."
    )
    lines.append("")
    steps = steps_by_rate(case)
    if steps:
        lines += [*_table(STEP_HEADER, (_step_row(s) for s in steps)), ""]
    else:
        lines += ["No steps recorded.", ""]
    notes = [n for n in case.notes if n.strip()]
    if notes:
        lines += ["Notes:", "", *(f"- {_md(n)}" for n in notes), ""]
    return lines + _errors_list(steps)


HOW_TO_READ = """\
## How to read this

Latency is measured from the producer's SQS send to the moment a client receives the message;
worker latency (the pipeline's own part) starts when a worker has received it from SQS. Loop
lag is how late the server's event loop runs a timer (a probe inside the server), and ping RTT
is a round trip a client makes to the server while the load runs: both show how much the
relay's consumer slows down every client, not just the ones receiving messages. A step is
*sustained* only while its p99 latency stays at or under 100 ms and at least 99% of what was
sent is delivered (a user calls a second of delay broken, whatever the throughput); any other
step is *saturated*, and the max sustained rate is the highest offered rate of a sustained
step.

Each regime's table compares all cases at one rate, named above it. The ratio columns divide a
case's value by that of the baseline case with the same number of consumers, named in the
column: `minimal`, the smallest correct relay of the same design (or `process`, this
repository's design, in runs without one): for latency and loop lag a ratio below 1 means lower
(better) than the baseline and above 1 means higher (worse); for max rate a ratio above 1 means
the case sustained a higher rate than the baseline. CPU is in seconds of CPU time per 1000
delivered messages; "total" adds every process of the relay (server, workers and any others)
but leaves out the load generators (SQS, clients, producer), which the plots show hatched. "—"
means the value was not measured or does not apply (for example worker CPU in modes that
consume inside the server).
"""


def render_markdown(
    results: BenchResults, plots: Mapping[str, Sequence[Path]] | None = None
) -> str:
    """The report as Markdown; ``plots`` maps each regime name to its plot files, to embed."""
    regimes = analyse(results)
    plot_files = plots or {}
    lines = _header(results.meta)
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
