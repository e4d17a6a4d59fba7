"""What the report compares: cases grouped by regime, at one rate, against a baseline.

Cases in a regime are compared at one *comparison rate*: the highest offered rate that every
case sustained (or, if there is none, the lowest rate offered), and against the ``minimal``
relay's case with the same number of consumers (its *baseline*; ``process`` in runs without
a minimal relay)::

    for regime in analyse(results):
        for row in regime.rows:
            row.label, row.metric(lambda step: step.latency_ms.p99), row.max_rate_ratio
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bench.formatting import finite
from bench.results import BenchResults, CaseResult, StepResult

__all__ = [
    "BASELINE_MODES",
    "LOAD_ROLES",
    "ROLE_ORDER",
    "Metric",
    "Regime",
    "Row",
    "analyse",
    "case_label",
    "comparison_rate",
    "cpu_by_role",
    "cpu_total",
    "half_rate_step",
    "latency_p99",
    "loop_lag_p99",
    "max_sustained_rate",
    "ratio",
    "reference_step",
    "step_at",
    "steps_by_rate",
]

#: Process roles that generate or host the load rather than relay it; left out of "total" CPU.
LOAD_ROLES = frozenset({"sqs", "clients", "producer"})
#: Order of the roles in tables and stacked bars; other roles follow in the order met.
ROLE_ORDER = ("server", "workers", "sqs", "clients", "producer")
#: What a regime's ratios are against: its minimal relay (the floor) when it ran one, else
#: this project's process mode (older runs).
BASELINE_MODES = ("minimal", "process")

#: Reads one figure from a step, such as ``lambda step: step.ping_rtt_ms.p99``.
Metric = Callable[[StepResult], float | None]


def latency_p99(step: StepResult) -> float | None:
    """The headline figure: p99 latency from the producer's send to a client's receive."""
    return step.latency_ms.p99


def loop_lag_p99(step: StepResult) -> float | None:
    """How much the consumer slows every client down: p99 of the server's event-loop lag."""
    return step.loop_lag_ms.p99


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing (or not a finite number) or ``b`` is 0."""
    x, y = finite(a), finite(b)
    if x is None or y is None or y == 0:
        return None
    return x / y


def steps_by_rate(case: CaseResult) -> list[StepResult]:
    """The case's steps, lowest offered rate first."""
    return sorted(case.steps, key=lambda step: step.offered_rate)


def _same_rate(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _comparison(case_steps: Sequence[Sequence[StepResult]]) -> tuple[float | None, bool]:
    """The comparison rate and whether every case sustained it without saturation."""
    per_case = [steps for steps in case_steps if steps]  # a case with no steps cannot vote
    if not per_case:
        return None, False

    def rates(steps: Sequence[StepResult], *, sustained_only: bool) -> set[float]:
        return {s.offered_rate for s in steps if not (sustained_only and s.is_saturated)}

    sustained = set.intersection(*(rates(s, sustained_only=True) for s in per_case))
    if sustained:
        return max(sustained), True
    offered_by_all = set.intersection(*(rates(s, sustained_only=False) for s in per_case))
    if offered_by_all:
        return min(offered_by_all), False
    return min(set.union(*(rates(s, sustained_only=False) for s in per_case))), False


def comparison_rate(case_steps: Sequence[Sequence[StepResult]]) -> float | None:
    """The offered rate at which to compare cases, given each case's list of steps.

    The highest offered rate that every case reached without saturation; if there is none, the
    lowest rate that every case offered (or, failing that, the lowest rate any case offered).
    Cases with no steps are ignored; None when no case has a step.
    """
    return _comparison(case_steps)[0]


def step_at(steps: Iterable[StepResult], rate: float | None) -> StepResult | None:
    """The step offered at ``rate``, or None."""
    if rate is None:
        return None
    return next((s for s in steps if _same_rate(s.offered_rate, rate)), None)


def max_sustained_rate(case: CaseResult) -> float:
    """The highest offered rate the case sustained (p99 and delivery within the definition,
    `bench.results.SUSTAINED_P99_MS`), or 0; never above what the runner recorded."""
    judged = max((s.offered_rate for s in case.steps if not s.is_saturated), default=0.0)
    given = finite(case.max_sustained_rate)
    return judged if given is None else min(given, judged)


def half_rate_step(case: CaseResult) -> StepResult | None:
    """The sustained step at the highest offered rate up to half the case's max sustained
    rate: where the pipeline's own latency (worker receive to client) is judged."""
    half = max_sustained_rate(case) / 2
    steps = [s for s in steps_by_rate(case) if not s.is_saturated and s.offered_rate <= half]
    return steps[-1] if steps else None


def reference_step(case: CaseResult) -> StepResult | None:
    """The step at the case's highest non-saturated rate, else its lowest-rate step."""
    steps = steps_by_rate(case)
    sustained = [s for s in steps if not s.is_saturated]
    if sustained:
        return sustained[-1]
    return steps[0] if steps else None


def cpu_by_role(step: StepResult) -> dict[str, float]:
    """CPU seconds per 1000 messages of each role that has a figure."""
    roles = ((role, finite(value)) for role, value in step.cpu_s_per_1000.items())
    return {role: value for role, value in roles if value is not None}


def cpu_total(step: StepResult | None) -> float | None:
    """CPU seconds per 1000 messages of the relay itself: every role but the load generators."""
    if step is None:
        return None
    relay = [v for role, v in cpu_by_role(step).items() if role not in LOAD_ROLES]
    return sum(relay) if relay else None


def case_label(case: CaseResult) -> str:
    """The case's display label, or one made from its mode and consumer count."""
    if case.label:
        return case.label
    consumers = case.consumers
    return f"{case.mode} x{consumers}" if consumers is not None and consumers > 1 else case.mode


@dataclass(frozen=True)
class Row:
    """One case of a regime, at the regime's comparison rate, beside its baseline."""

    case: CaseResult
    label: str
    step: StepResult | None  # the step at the comparison rate
    baseline: Row | None

    @property
    def max_rate(self) -> float:
        return max_sustained_rate(self.case)

    @property
    def pipeline_p99(self) -> float | None:
        """Worker receive to client, p99, at half the max sustained rate."""
        step = half_rate_step(self.case)
        return None if step is None else finite(step.worker_latency_ms.p99)

    def metric(self, read: Metric) -> float | None:
        return None if self.step is None else finite(read(self.step))

    def vs_baseline(self, read: Metric) -> float | None:
        if self.baseline is None:
            return None
        return ratio(self.metric(read), self.baseline.metric(read))

    @property
    def max_rate_ratio(self) -> float | None:
        return None if self.baseline is None else ratio(self.max_rate, self.baseline.max_rate)


def _describe(values: Iterable[str | int | None], unit: str = "") -> str:
    """The values ("fast", "5 clients"), their range ("5 to 50 clients"), or all of them."""
    present = [v for v in values if v is not None]
    numbers = [n for n in map(finite, present) if n is not None]
    if present and len(numbers) == len(present):
        low, high = min(numbers), max(numbers)
        text = f"{low:,.0f}" if low == high else f"{low:,.0f} to {high:,.0f}"
    else:
        text = "/".join(dict.fromkeys(map(str, present))) or "?"
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class Regime:
    """The cases run under one load regime, compared at one offered rate."""

    name: str
    cases: list[CaseResult]
    rate: float | None
    all_sustained: bool
    rows: list[Row]
    #: The mode the ratio columns divide by (BASELINE_MODES).
    baseline_mode: str = BASELINE_MODES[-1]

    @property
    def backends(self) -> str:
        return _describe(c.backend for c in self.cases)

    @property
    def clients(self) -> str:
        return _describe((c.clients for c in self.cases), "clients")


def _baseline_for(case: CaseResult, candidates: list[Row]) -> Row | None:
    """The baseline row with the same consumers (and backend if possible), else the first."""
    if not candidates:
        return None

    def same_consumers(row: Row) -> bool:
        return row.case.consumers == case.consumers

    def same_backend(row: Row) -> bool:
        return row.case.backend == case.backend

    for wanted in ((same_consumers, same_backend), (same_consumers,), (same_backend,)):
        for row in candidates:
            if all(same(row) for same in wanted):
                return row
    return candidates[0]


def _regime(name: str, members: list[CaseResult]) -> Regime:
    rate, all_sustained = _comparison([c.steps for c in members])
    multi_backend = len({c.backend for c in members}) > 1

    def label(case: CaseResult) -> str:
        text = case_label(case)
        return f"{text} [{case.backend}]" if multi_backend else text

    modes = {c.mode for c in members}
    baseline_mode = next((m for m in BASELINE_MODES if m in modes), BASELINE_MODES[-1])
    baselines = [
        Row(c, label(c), step_at(c.steps, rate), None) for c in members if c.mode == baseline_mode
    ]
    rows = [Row(c, label(c), step_at(c.steps, rate), _baseline_for(c, baselines)) for c in members]
    return Regime(name, members, rate, all_sustained, rows, baseline_mode)


def analyse(results: BenchResults) -> list[Regime]:
    """The run's regimes in the order they first ran, each with its cases in run order."""
    names = dict.fromkeys(c.regime for c in results.cases)
    return [_regime(name, [c for c in results.cases if c.regime == name]) for name in names]
