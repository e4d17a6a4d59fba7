"""`python -m bench tracing`: what the relay's traces cost, off and on (issue 32).

Four cases on the hand-off regime (few clients, a fixed offered rate that every case
sustains, the fast in-memory SQS back end bench/fakesqs.py, `process x2`), each on a fresh
stack, measured the way `python -m bench` measures a step (bench/runner.py's `run_step`):

  before    the relay as it was before traces existed (--before-commit), run from a git
            worktree (--before-tree; created with `git worktree add --detach` if missing)
            with this venv: the server and the workers get PYTHONPATH=<tree>
  off       this code, traces off (OTEL_TRACES_EXPORTER=none, the default): this checkout
            as it is, or --this-commit from a worktree (--this-tree) like `before`, so that
            what others edit in the checkout while the run lasts does not reach it
  on-1%     traces on, OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01
  on-100%   traces on, OTEL_TRACES_SAMPLER=always_on

The cases run interleaved, A B C D A B C D ..., --reps times, so that whatever else the
shared machine does hits all of them alike; the 1-minute load average before and after each
run is recorded. Traces go over OTLP/HTTP (the SDK's standard batching, OTEL_BSP_*
defaults) to a sink in this process: a thread that reads each request's body and answers
200 with an empty body, counting requests and bytes; it decodes nothing while the load runs.
After each run its stack is stopped (the relay flushes its spans), and the bodies kept are
decoded to count the spans whose start falls in each step, per service.

Per case and rate: the workers' and the server's CPU per message (µs, psutil CPU time of
each process over the step, as bench/measure.py reads it, divided by the messages
delivered), p50/p99 latency from the producer's send to the client's receive, the share of
sent messages delivered, and for the traced cases the spans exported per second. Each
figure is the median of the repetitions (min-max); the ratios to `before` pair each
repetition with the `before` run of its own round. The noise floor is the range of
`before`'s runs against each other (A against A, every pair).

Writes tracing.json (every run, every step) and tracing.md (the tables) to --out, and
prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.formatting import DASH, fmt, fmt_ratio
from bench.results import RunMeta, StepResult
from bench.runner import run_step
from bench.stack import PYTHON, Case, Proc, Stack
from devtools.supervisor import ROOT

__all__ = ["CASES", "OtlpSink", "TracingResults", "main"]

CASES = ("before", "off", "on-1%", "on-100%")
BEFORE_COMMIT = "10abbbc"
BEFORE_TREE = Path("/tmp/relay-before")
THIS_TREE = Path("/tmp/relay-this")
#: The sampled share of each traced case (what its sampler is set to).
SAMPLED = {"on-1%": 0.01, "on-100%": 1.0}
#: Spans per delivered message when it is sampled: the worker's receive, decode, hand-off and
#: delete, and the server's emit (worker/tracing.py, server/intake/tracing.py).
SPANS_PER_MESSAGE = 5
#: Lines in a relay process's log that say spans were lost or not exported.
EXPORT_TROUBLE = (
    "Queue is full",
    "dropped",
    "Failed to export",
    "Exception while exporting",
    "Transient error",
)
_MODEL = ConfigDict(extra="forbid", frozen=True)


# --- the sink ------------------------------------------------------------------------------------
class OtlpSink:
    """An OTLP/HTTP receiver that only counts: each request's body is read, kept and answered
    200 with an empty body (a valid, empty ExportTraceServiceResponse). Usage::

        with OtlpSink() as sink:
            env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.endpoint}
            ...
            requests, size, bodies = sink.take()   # and start counting afresh
    """

    def __init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink._record(body, self.headers.get("Content-Encoding") == "gzip")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: one line per export would swamp the progress

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0
        self._bodies: list[tuple[bytes, bool]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def _record(self, body: bytes, gzipped: bool) -> None:
        with self._lock:
            self._requests += 1
            self._bytes += len(body)
            self._bodies.append((body, gzipped))

    def take(self) -> tuple[int, int, list[tuple[bytes, bool]]]:
        """(requests, bytes, the bodies with whether each is gzipped) since the last take."""
        with self._lock:
            taken = (self._requests, self._bytes, self._bodies)
            self._requests, self._bytes, self._bodies = 0, 0, []
        return taken

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def span_starts(bodies: Sequence[tuple[bytes, bool]]) -> list[tuple[str, int]]:
    """(service name, start in ns since the epoch) of every span in OTLP requests; decoded
    only after the load (the sink keeps the bytes)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    starts: list[tuple[str, int]] = []
    for body, gzipped in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(gzip.decompress(body) if gzipped else body)
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "?",
            )
            for scope_spans in resource_spans.scope_spans:
                starts += [(service, span.start_time_unix_nano) for span in scope_spans.spans]
    return starts


# --- what a run records --------------------------------------------------------------------------
class TracedStep(BaseModel):
    """One offered rate of one run, with the wall-clock window it ran in and its spans."""

    model_config = _MODEL

    window_start: float
    window_end: float
    step: StepResult
    #: Spans that started in the window, per service (traced cases only).
    spans: dict[str, int] | None = None


class TracingRun(BaseModel):
    """One case once: a fresh stack, every rate in turn."""

    model_config = _MODEL

    case: str
    rep: int
    #: 1-, 5- and 15-minute load averages just before the stack started and after it stopped.
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    steps: list[TracedStep] = Field(default_factory=list)
    sink_requests: int | None = None
    sink_bytes: int | None = None
    notes: list[str] = Field(default_factory=list)


class Figure(BaseModel):
    """A figure over the repetitions, and its ratio to `before` paired by round."""

    model_config = _MODEL

    median: float | None = None
    min: float | None = None
    max: float | None = None
    ratio: float | None = None
    ratio_min: float | None = None
    ratio_max: float | None = None


class SummaryRow(BaseModel):
    model_config = _MODEL

    case: str
    rate: float
    runs: int
    figures: dict[str, Figure]


class TracingResults(BaseModel):
    model_config = _MODEL

    meta: RunMeta
    settings: dict[str, Any]
    runs: list[TracingRun] = Field(default_factory=list)
    summary: list[SummaryRow] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TracingResults:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# --- running ----------------------------------------------------------------------------------
@dataclass
class RelayStack(Stack):
    """A bench stack whose relay processes (the server and the workers) get `relay_env` on
    top of the usual environment; the SQS back end, clients and producer run as usual."""

    relay_env: dict[str, str] = field(default_factory=dict)

    def spawn(self, role: str, name: str, args: list[str], **env: str) -> Proc:
        if role in ("server", "workers"):
            env = {**env, **self.relay_env}
        return super().spawn(role, name, args, **env)


def case_env(
    case: str, before_tree: Path, endpoint: str, this_tree: Path | None = None
) -> dict[str, str]:
    """The relay processes' environment for `case`: `before` from `before_tree`, the others
    from `this_tree` (None: this checkout, as it is)."""
    if case == "before":
        return {"PYTHONPATH": str(before_tree), "OTEL_TRACES_EXPORTER": "none"}
    tree = {} if this_tree is None else {"PYTHONPATH": str(this_tree)}
    if case == "off":
        return {**tree, "OTEL_TRACES_EXPORTER": "none"}
    env = {
        **tree,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    if case == "on-1%":
        env.update(OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.01")
    return env


def prepare_tree(tree: Path, commit: str) -> str:
    """The worktree of `commit` at `tree`, created if missing, with this checkout's fetched
    (git-ignored) client files copied in; its full commit. Fails if it holds anything else
    or if the relay's modules do not load from it."""
    full = _git(ROOT, "rev-parse", f"{commit}^{{commit}}")
    if not (tree / ".git").exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), full],
            check=True,
            capture_output=True,
        )
    head = _git(tree, "rev-parse", "HEAD")
    if head != full:
        raise RuntimeError(f"{tree} is at {head}, not {full}: remove it or pass --before-tree")
    vendor = Path("server/web/static/vendor")
    if (ROOT / vendor).is_dir():
        shutil.copytree(ROOT / vendor, tree / vendor, dirs_exist_ok=True)
    with tempfile.TemporaryDirectory() as cwd:
        loaded = subprocess.run(
            [PYTHON, "-c", "import server, worker; print(server.__file__); print(worker.__file__)"],
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    if not all(Path(path).is_relative_to(tree) for path in loaded):
        raise RuntimeError(f"the relay does not load from {tree}: {loaded}")
    return full


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def export_trouble(stack: Stack) -> list[str]:
    """The relay processes' log lines that say spans were dropped or not exported."""
    lines: list[str] = []
    for proc in stack.procs:
        if proc.role in ("server", "workers") and proc.log.exists():
            lines += [
                f"{proc.log.name}: {line.strip()[:300]}"
                for line in proc.log.read_text(errors="replace").splitlines()
                if any(marker in line for marker in EXPORT_TROUBLE)
            ]
    return lines


def run_one(
    case: str,
    rep: int,
    args: argparse.Namespace,
    sink: OtlpSink,
    logs: Path,
    on_step: Callable[[float, StepResult], None],
) -> TracingRun:
    """`case` once on a fresh stack, each of --rates in turn."""
    bench_case = Case("handoff", "process", args.consumers, args.clients, "fast", args.rates)
    log_dir = logs / f"{case.replace('%', 'pct')}-r{rep}"
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = RelayStack(
        bench_case,
        log_dir,
        args.delay_ms,
        relay_env=case_env(case, args.before_tree, sink.endpoint, args.this_tree_used),
    )
    load_before = os.getloadavg()
    sink.take()  # what a previous run left (nothing: each stack is stopped before the next)
    windows: list[tuple[float, float, StepResult]] = []
    notes: list[str] = []
    try:
        stack.start()
        for index, rate in enumerate(args.rates):
            start = time.time()
            step = run_step(stack, bench_case, rate, args.duration, index)
            windows.append((start, time.time(), step))
            on_step(rate, step)
    except Exception as exc:
        notes.append(f"run failed: {exc}")
    finally:
        stack.stop()  # the relay flushes its batched spans as it stops
    requests, size, bodies = sink.take()
    notes += export_trouble(stack)
    starts = span_starts(bodies) if case in SAMPLED else []
    steps = [
        TracedStep(
            window_start=round(begin, 3),
            window_end=round(end, 3),
            step=step,
            spans=_count(starts, begin, end) if case in SAMPLED else None,
        )
        for begin, end, step in windows
    ]
    return TracingRun(
        case=case,
        rep=rep,
        load_before=_rounded(load_before),
        load_after=_rounded(os.getloadavg()),
        steps=steps,
        sink_requests=requests,
        sink_bytes=size,
        notes=notes,
    )


def _count(starts: list[tuple[str, int]], begin: float, end: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    low, high = int(begin * 1e9), int(end * 1e9)
    for service, start_ns in starts:
        if low <= start_ns <= high:
            counts[service] = counts.get(service, 0) + 1
    return counts


def _rounded(load: tuple[float, float, float]) -> tuple[float, float, float]:
    one, five, fifteen = load
    return round(one, 2), round(five, 2), round(fifteen, 2)


# --- the figures -------------------------------------------------------------------------------
def _us_per_message(role: str) -> Callable[[TracedStep], float | None]:
    def read(traced: TracedStep) -> float | None:
        per_1000 = traced.step.cpu_s_per_1000.get(role)
        return None if per_1000 is None else per_1000 * 1000  # s per 1000 -> µs per one

    return read


def _delivered_pct(traced: TracedStep) -> float | None:
    step = traced.step
    if not step.sent or step.delivered is None:
        return None
    return step.delivered / step.sent * 100


def _spans_per_s(traced: TracedStep) -> float | None:
    if traced.spans is None:
        return None
    seconds = traced.step.duration_s
    return sum(traced.spans.values()) / seconds if seconds else None


def _spans_per_sampled_message(traced: TracedStep, share: float) -> float | None:
    if traced.spans is None or not traced.step.delivered:
        return None
    return sum(traced.spans.values()) / (traced.step.delivered * share)


#: Each figure of the table: its key, its heading, how it is read off a step.
FIGURES: dict[str, tuple[str, Callable[[TracedStep], float | None]]] = {
    "worker_us": ("worker CPU µs/msg", _us_per_message("workers")),
    "server_us": ("server CPU µs/msg", _us_per_message("server")),
    "p50_ms": ("p50 ms", lambda t: t.step.latency_ms.p50),
    "p99_ms": ("p99 ms", lambda t: t.step.latency_ms.p99),
    "delivered_pct": ("delivered %", _delivered_pct),
    "spans_per_s": ("spans/s", _spans_per_s),
}
#: The figures a ratio to `before` is given for.
RATIOS = ("worker_us", "server_us", "p50_ms", "p99_ms")


def summarise(
    runs: Sequence[TracingRun], cases: Sequence[str], rates: Sequence[float]
) -> list[SummaryRow]:
    """Per case and rate: each figure's median (min-max) over the repetitions, and its ratio
    to the `before` run of the same round (median, min-max of those ratios); on `before`'s
    own row, every run against every other one: the noise floor of one run against another."""
    by_key: dict[tuple[str, float], dict[int, TracedStep]] = {}
    for run in runs:
        for traced in run.steps:
            by_key.setdefault((run.case, traced.step.offered_rate), {})[run.rep] = traced
    rows = []
    for rate in rates:
        before = by_key.get(("before", rate), {})
        for case in cases:
            steps = by_key.get((case, rate), {})
            figures = {}
            for key, (_title, read) in FIGURES.items():
                values = {rep: v for rep, t in steps.items() if (v := read(t)) is not None}
                if not values:
                    continue
                ratios: list[float] = []
                if key in RATIOS and before:
                    if case == "before":
                        # A against A, the noise floor: every run against every other one
                        ratios = [
                            v / w
                            for i, v in values.items()
                            for j, w in values.items()
                            if i != j and w
                        ]
                    else:
                        ratios = [
                            v / b
                            for rep, v in values.items()
                            if rep in before and (b := read(before[rep]))
                        ]
                figures[key] = Figure(
                    median=statistics.median(values.values()),
                    min=min(values.values()),
                    max=max(values.values()),
                    ratio=statistics.median(ratios) if ratios else None,
                    ratio_min=min(ratios) if ratios else None,
                    ratio_max=max(ratios) if ratios else None,
                )
            if case in SAMPLED:
                per = [
                    v
                    for t in steps.values()
                    if (v := _spans_per_sampled_message(t, SAMPLED[case])) is not None
                ]
                if per:
                    figures["spans_per_sampled_msg"] = Figure(
                        median=statistics.median(per), min=min(per), max=max(per)
                    )
            rows.append(SummaryRow(case=case, rate=rate, runs=len(steps), figures=figures))
    return rows


def _cell(figure: Figure | None, digits: int = 1, ratio: bool = False) -> str:
    if figure is None or figure.median is None:
        return DASH
    text = f"{fmt(figure.median, digits)} ({fmt(figure.min, digits)}-{fmt(figure.max, digits)})"
    if ratio and figure.ratio is not None:
        text += (
            f" x{fmt_ratio(figure.ratio)} ({fmt_ratio(figure.ratio_min)}-"
            f"{fmt_ratio(figure.ratio_max)})"
        )
    return text


def _short(figure: Figure | None, digits: int) -> str:
    """The median, and its ratio to `before` when there is one (the terminal's table)."""
    if figure is None or figure.median is None:
        return DASH
    ratio = "" if figure.ratio is None else f" x{fmt_ratio(figure.ratio)}"
    return fmt(figure.median, digits) + ratio


def table_rows(summary: Sequence[SummaryRow]) -> list[list[str]]:
    rows = []
    for row in summary:
        f = row.figures
        rows.append(
            [
                row.case,
                f"{row.rate:g}",
                str(row.runs),
                _cell(f.get("worker_us"), 0, ratio=True),
                _cell(f.get("server_us"), 0, ratio=True),
                _cell(f.get("p50_ms"), 1, ratio=True),
                _cell(f.get("p99_ms"), 1, ratio=True),
                _cell(f.get("delivered_pct"), 2),
                _cell(f.get("spans_per_s"), 0),
            ]
        )
    return rows


HEADER = [
    "case",
    "msg/s",
    "runs",
    "worker CPU µs/msg (x before)",
    "server CPU µs/msg (x before)",
    "p50 ms (x before)",
    "p99 ms (x before)",
    "delivered %",
    "spans/s",
]


def print_table(summary: Sequence[SummaryRow], console: Console) -> None:
    table = Table(
        title="Tracing cost: median (min-max) of the repetitions; "
        "x: the ratio to before, paired by round"
    )
    for title in ["case", "msg/s", "worker µs/msg", "server µs/msg", "p50 ms", "p99 ms",
                  "delivered %", "spans/s"]:  # fmt: skip
        table.add_column(title, justify="left" if title == "case" else "right")
    for row in summary:
        f = row.figures
        table.add_row(
            row.case,
            f"{row.rate:g}",
            *(_short(f.get(key), digits) for key, digits in
              (("worker_us", 0), ("server_us", 0), ("p50_ms", 1), ("p99_ms", 1))),
            _short(f.get("delivered_pct"), 2),
            _short(f.get("spans_per_s"), 0),
        )  # fmt: skip
    console.print(table)


# --- the report -------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return lines + [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
    ]


def _find(summary: Sequence[SummaryRow], case: str, rate: float) -> SummaryRow | None:
    return next((r for r in summary if r.case == case and r.rate == rate), None)


def _spread(figure: Figure | None) -> str:
    if figure is None or figure.ratio_min is None or figure.ratio_max is None:
        return DASH
    return f"{(figure.ratio_min - 1) * 100:+.1f}% to {(figure.ratio_max - 1) * 100:+.1f}%"


def _pct(figure: Figure | None) -> str:
    if figure is None or figure.ratio is None:
        return DASH
    low, high = figure.ratio_min or figure.ratio, figure.ratio_max or figure.ratio
    return (
        f"{(figure.ratio - 1) * 100:+.1f}% (runs {(low - 1) * 100:+.1f}% to "
        f"{(high - 1) * 100:+.1f}%)"
    )


def _load_range(runs: Sequence[TracingRun]) -> str:
    loads = [load[0] for run in runs for load in (run.load_before, run.load_after)]
    return f"{min(loads):.2f} to {max(loads):.2f}" if loads else DASH


def render_markdown(results: TracingResults) -> str:
    meta, settings = results.meta, results.settings
    cases, rates = settings["cases"], settings["rates"]
    lines = [
        "# What traces cost: off and on",
        "",
        f"- Command: `{meta.command}`",
        f"- Machine: {meta.machine}, Python {meta.python}; started {meta.started}, "
        f"{fmt(meta.duration_s, 0)} s in all",
        f"- Regime: handoff, `process x{settings['consumers']}`, {settings['clients']} clients, "
        f"fast back end (bench/fakesqs.py), {settings['duration_s']:g} s per step at "
        f"{', '.join(f'{r:g}' for r in rates)} msg/s offered",
        f"- Cases, interleaved ({' '.join(cases)}, {settings['reps']} rounds): `before` is "
        f"{settings['before_commit'][:10]} (the commit before traces) from a git worktree; "
        + (
            f"the others {settings['this_commit'][:10]} from a git worktree"
            if settings.get("this_tree")
            else f"the others this checkout ({settings['this_commit'][:10]}"
            + (", with uncommitted changes)" if settings.get("dirty") else ")")
        )
        + ". The traced cases export over OTLP/HTTP to a counting sink in the bench process "
        "with the SDK's standard batching (BatchSpanProcessor defaults).",
        f"- Load: the 1-minute load average ran from {_load_range(results.runs)} over the "
        f"runs, on {meta.cpus} cores shared with other work (every run's below).",
        "",
        "## Results",
        "",
        "Median of the repetitions (min-max). x: the ratio to the `before` run of the same "
        "round, median (min-max); on the `before` row, every `before` run against every other "
        "one (the noise floor: one run of the same code against another, A against A). CPU "
        "is each role's psutil user+system time over the step (from before the load starts "
        "until the queue has drained) per message delivered; latency is the producer's send "
        "to the client's receive.",
        "",
        *_md_table(HEADER, table_rows(results.summary)),
        "",
    ]
    for rate in rates:
        before, off = _find(results.summary, "before", rate), _find(results.summary, "off", rate)
        if before is None or off is None:
            continue
        lines += [
            f"### {rate:g} msg/s: what `off` costs against `before`",
            "",
            *_md_table(
                ["figure", "off against before", "noise floor (before against before)"],
                [
                    [
                        FIGURES[key][0],
                        _pct(off.figures.get(key)),
                        _spread(before.figures.get(key)),
                    ]
                    for key in RATIOS
                ],
            ),
            "",
        ]
        for case in ("on-1%", "on-100%"):
            row = _find(results.summary, case, rate)
            if row is None:
                continue
            per = row.figures.get("spans_per_sampled_msg")
            lines.append(
                f"- `{case}`: worker CPU {_pct(row.figures.get('worker_us'))}, server CPU "
                f"{_pct(row.figures.get('server_us'))}, p99 {_pct(row.figures.get('p99_ms'))}; "
                f"{_cell(row.figures.get('spans_per_s'), 0)} spans/s exported, "
                f"{fmt(per.median if per else None, 2)} spans per sampled message "
                f"(expected {SPANS_PER_MESSAGE})."
            )
        lines.append("")
    lines += [
        "## Runs",
        "",
        "In the order they ran; load: the 1-minute load average before the stack started and "
        "after it stopped (2 cores, shared with other work).",
        "",
    ]
    run_rows = []
    for run in results.runs:
        traced_steps: list[TracedStep | None] = [*run.steps] or [None]
        for traced in traced_steps:
            step = traced.step if traced is not None else None
            spans = traced.spans if traced is not None else None
            run_rows.append(
                [
                    run.case,
                    str(run.rep),
                    f"{run.load_before[0]:.2f} → {run.load_after[0]:.2f}",
                    f"{step.offered_rate:g}" if step else DASH,
                    fmt(_us_per_message("workers")(traced), 0) if traced else DASH,
                    fmt(_us_per_message("server")(traced), 0) if traced else DASH,
                    fmt(step.latency_ms.p50) if step else DASH,
                    fmt(step.latency_ms.p99) if step else DASH,
                    fmt(_delivered_pct(traced), 2) if traced else DASH,
                    DASH if spans is None else ", ".join(f"{k} {v}" for k, v in spans.items()),
                    f"{run.sink_requests or 0} / {(run.sink_bytes or 0) / 1024:.0f} KiB",
                ]
            )
    lines += _md_table(
        ["case", "rep", "load", "msg/s", "worker µs", "server µs", "p50", "p99", "deliv. %",
         "spans (by service)", "sink requests / bytes"],
        run_rows,
    )  # fmt: skip
    notes = [f"- {run.case} r{run.rep}: {note}" for run in results.runs for note in run.notes]
    lines += ["", "## Notes", "", *(notes or ["- none: no run failed, no export error logged"])]
    lines += ["", "## Verdict", "", *verdicts(results.summary, rates)]
    return "\n".join(lines) + "\n"


def verdicts(summary: Sequence[SummaryRow], rates: Sequence[float]) -> list[str]:
    """A sentence per rate: is `off` against `before` outside the noise floor (the range of
    `before`'s runs against each other) on any figure?"""
    sentences = []
    for rate in rates:
        before, off = _find(summary, "before", rate), _find(summary, "off", rate)
        if before is None or off is None:
            continue
        if before.runs < 2:
            sentences.append(
                f"- {rate:g} msg/s: one `before` run, so no noise floor to judge `off` against."
            )
            continue
        outside = []
        for key in RATIOS:
            floor, cost = before.figures.get(key), off.figures.get(key)
            if floor is None or cost is None or cost.ratio is None:
                continue
            low, high = floor.ratio_min or 1.0, floor.ratio_max or 1.0
            if not low <= cost.ratio <= high:
                outside.append(f"{FIGURES[key][0]} {(cost.ratio - 1) * 100:+.1f}%")
        sentences.append(
            f"- {rate:g} msg/s: `off` against `before` is within the noise floor on every figure."
            if not outside
            else f"- {rate:g} msg/s: `off` against `before` falls outside the noise floor on "
            + ", ".join(outside)
            + " (median of the paired ratios, against the range of `before`'s runs against "
            "each other)."
        )
    return sentences


# --- the command -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench tracing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cases",
        type=lambda s: s.split(","),
        default=list(CASES),
        help="comma list, in the order each round runs them (default: "
        + ",".join(CASES).replace("%", "%%")
        + ")",
    )
    parser.add_argument("--reps", type=int, default=3, help="rounds of every case (default 3)")
    parser.add_argument(
        "--rates",
        type=lambda s: [float(r) for r in s.split(",")],
        default=[500.0],
        help="offered msgs/s, comma list, each a step of every run (default 500)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per step (15)")
    parser.add_argument("--clients", type=int, default=5, help="clients (default 5)")
    parser.add_argument("--consumers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="fast back end: added round trip"
    )
    parser.add_argument(
        "--before-commit",
        default=BEFORE_COMMIT,
        help=f"the `before` case's commit ({BEFORE_COMMIT})",
    )
    parser.add_argument(
        "--before-tree",
        type=Path,
        default=BEFORE_TREE,
        help=f"its git worktree, created if missing (default {BEFORE_TREE})",
    )
    parser.add_argument(
        "--this-commit",
        help="run the other cases from this commit in a git worktree (--this-tree) rather than "
        "from this checkout as it is, which others may be editing while the run lasts",
    )
    parser.add_argument(
        "--this-tree",
        type=Path,
        default=THIS_TREE,
        help=f"the worktree of --this-commit, created if missing (default {THIS_TREE})",
    )
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/tracing-<time>)")
    parser.add_argument(
        "--from-json",
        type=Path,
        help="run nothing: work the summary out again from a tracing.json and write it and "
        "tracing.md again beside it",
    )
    args = parser.parse_args(argv)
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; choose from {', '.join(CASES)}")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


@contextlib.contextmanager
def _progress(console: Console, total: int) -> Iterator[tuple[Progress, Any]]:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        yield progress, progress.add_task("steps", total=total)


def rewrite(path: Path) -> TracingResults:
    """A saved run's summary and report worked out again (after a change to either)."""
    saved = TracingResults.load(path)
    settings = saved.settings
    results = saved.model_copy(
        update={"summary": summarise(saved.runs, settings["cases"], settings["rates"])}
    )
    path.write_text(results.model_dump_json(indent=2), encoding="utf-8")
    path.with_name("tracing.md").write_text(render_markdown(results), encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        print_table(rewrite(args.from_json).summary, Console())
        return 0
    started = datetime.now(UTC)
    out: Path = args.out or Path("bench/out") / started.strftime("tracing-%Y%m%d-%H%M%S")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    before_commit = (
        prepare_tree(args.before_tree, args.before_commit) if "before" in args.cases else None
    )
    this_commit = prepare_tree(args.this_tree, args.this_commit) if args.this_commit else None
    args.this_tree_used = args.this_tree if this_commit else None
    meta = RunMeta.here("python -m bench tracing", argv, started, backend="fast",
                        backend_delay_ms=args.delay_ms)  # fmt: skip
    settings: dict[str, Any] = {
        "cases": args.cases,
        "reps": args.reps,
        "rates": args.rates,
        "duration_s": args.duration,
        "clients": args.clients,
        "consumers": args.consumers,
        "before_commit": before_commit or args.before_commit,
        "before_tree": str(args.before_tree),
        "this_commit": this_commit or _git(ROOT, "rev-parse", "HEAD"),
        "this_tree": str(args.this_tree_used) if args.this_tree_used else None,
        "dirty": None
        if this_commit
        else bool(_git(ROOT, "status", "--porcelain", "--untracked-files=no")),
    }
    console.print(
        f"[bold]{len(args.cases)} cases, {args.reps} rounds[/], "
        f"{', '.join(f'{r:g}' for r in args.rates)} msg/s, {args.duration:g} s a step; "
        f"output in {out}"
    )
    runs: list[TracingRun] = []
    t0 = time.monotonic()
    with (
        OtlpSink() as sink,
        _progress(console, args.reps * len(args.cases) * len(args.rates)) as (progress, task),
    ):
        for rep in range(1, args.reps + 1):
            for case in args.cases:
                progress.update(task, description=f"round {rep}: {case}")

                def on_step(
                    rate: float, step: StepResult, case: str = case, rep: int = rep
                ) -> None:
                    cpu = step.cpu_s_per_1000
                    progress.console.print(
                        f"  r{rep} {case:8} {rate:>5.0f}/s  delivered "
                        f"{fmt(step.delivered, 0)}/{step.sent}  p99 {fmt(step.latency_ms.p99)} ms"
                        f"  worker {fmt((cpu.get('workers') or 0) * 1000, 0)} µs/msg  server "
                        f"{fmt((cpu.get('server') or 0) * 1000, 0)} µs/msg  load "
                        f"{os.getloadavg()[0]:.2f}"
                    )
                    progress.advance(task)

                run = run_one(case, rep, args, sink, logs, on_step)
                for note in run.notes:
                    progress.console.print(f"  [yellow]{case} r{rep}: {note}[/]")
                runs.append(run)
    meta = meta.model_copy(update={"duration_s": round(time.monotonic() - t0, 1)})
    results = TracingResults(
        meta=meta,
        settings=settings,
        runs=runs,
        summary=summarise(runs, args.cases, args.rates),
    )
    (out / "tracing.json").write_text(results.model_dump_json(indent=2), encoding="utf-8")
    (out / "tracing.md").write_text(render_markdown(results), encoding="utf-8")
    print_table(results.summary, Console())
    console.print(f"wrote {out / 'tracing.json'} and {out / 'tracing.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
