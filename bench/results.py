"""What a benchmark run records, as pydantic models: the shape of ``results.json``.

The runner builds a :class:`StepResult` per offered rate and a :class:`CaseResult` per case;
``python -m bench`` wraps them with :class:`RunMeta` in :class:`BenchResults` and saves it; the
report reads it back::

    results = BenchResults.load(Path("bench/results/2-core/results.json"))
    results.cases[0].steps[0].latency_ms.p99

A measurement that was not taken is None (an empty :class:`Percentiles` for a distribution,
written as ``null`` in the file, as before the models existed) and shows as "—" in the report.
Only what identifies a step or a case is required: its offered rate, its mode.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = [
    "SUSTAINED_DELIVERED",
    "SUSTAINED_P99_MS",
    "BenchResults",
    "CaseResult",
    "Percentiles",
    "RunMeta",
    "StepResult",
]

#: A rate is *sustained* only while the p99 latency stays at or under this and ...
SUSTAINED_P99_MS = 100.0
#: ... at least this share of what was sent is delivered: a user calls a second of delay
#: broken, whatever the throughput. One definition, for the runner, the report and the README.
SUSTAINED_DELIVERED = 0.99

#: Unknown keys are an error: a misspelt key would otherwise read as "not measured".
_MODEL = ConfigDict(extra="forbid", frozen=True)
_DISTRIBUTIONS = ("latency_ms", "worker_latency_ms", "loop_lag_ms", "ping_rtt_ms")


class Percentiles(BaseModel):
    """A distribution in milliseconds; every field None when it was not measured."""

    model_config = _MODEL

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    count: int | None = None

    @property
    def measured(self) -> bool:
        return any(value is not None for value in self.model_dump().values())


class StepResult(BaseModel):
    """One offered rate on one case: what was sent, delivered and measured."""

    model_config = _MODEL

    offered_rate: float
    duration_s: float | None = None
    sent: int | None = None
    achieved_send_rate: float | None = None
    #: Distinct messages per client (a mean over the clients, so not a whole number).
    delivered: float | None = None
    #: Delivered messages per second per client.
    delivered_rate: float | None = None
    #: From the producer's SQS send to a client's receive.
    latency_ms: Percentiles = Field(default_factory=Percentiles)
    #: From a worker's SQS receive to a client's receive.
    worker_latency_ms: Percentiles = Field(default_factory=Percentiles)
    #: How late the server's event loop ran a timer (its in-process probe).
    loop_lag_ms: Percentiles = Field(default_factory=Percentiles)
    #: One client's ping round trip through the server while the load runs.
    ping_rtt_ms: Percentiles = Field(default_factory=Percentiles)
    #: Process role ("server", "workers", "sqs", ...) -> CPU seconds per 1000 delivered
    #: messages; None when nothing was delivered.
    cpu_s_per_1000: dict[str, float | None] = Field(default_factory=dict)
    #: Process role -> peak resident memory of all its processes together.
    peak_rss_mb: dict[str, float] = Field(default_factory=dict)
    queue_depth_max: int | None = None
    #: Messages a client received more than once.
    duplicates: int | None = None
    #: Events from earlier steps that reached clients (a consumer that never deletes).
    stale_redeliveries: int | None = None
    errors: list[str] | None = None
    saturated: bool | None = None

    @field_validator(*_DISTRIBUTIONS, mode="before")
    @classmethod
    def _read_null_as_not_measured(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_serializer(*_DISTRIBUTIONS)
    def _write_not_measured_as_null(self, value: Percentiles) -> dict[str, Any] | None:
        return value.model_dump(exclude_none=True) if value.measured else None

    @property
    def is_saturated(self) -> bool:
        """Not sustained: marked so when it ran, or its figures are out of the definition
        (`SUSTAINED_P99_MS`, `SUSTAINED_DELIVERED`), so an older run is judged the same way."""
        return bool(self.saturated) or self.out_of_bounds

    @property
    def out_of_bounds(self) -> bool:
        """Measured, and past the definition: p99 over `SUSTAINED_P99_MS`, or less than
        `SUSTAINED_DELIVERED` of the sent delivered (per client)."""
        p99, sent, delivered = self.latency_ms.p99, self.sent, self.delivered
        if p99 is not None and p99 > SUSTAINED_P99_MS:
            return True
        return bool(sent) and delivered is not None and delivered < SUSTAINED_DELIVERED * sent

    @property
    def meets_definition(self) -> bool:
        """Sustained, as the runner judges a step it just ran: something was sent, the
        latency was measured, and neither figure is out of bounds."""
        return bool(self.sent) and self.latency_ms.p99 is not None and not self.out_of_bounds


class CaseResult(BaseModel):
    """One design (``mode``) under one load regime: the steps of its offered-rate ramp."""

    model_config = _MODEL

    regime: str = "default"
    mode: str
    consumers: int | None = None
    clients: int | None = None
    backend: str | None = None
    label: str | None = None
    #: Run with `--pin`: the server process on its own core, everything else on the rest.
    pinned: bool | None = None
    steps: list[StepResult] = Field(default_factory=list)
    #: The highest offered rate of a sustained step (0 if none), as the runner judged it;
    #: the report works it out from the steps (so an older run is judged by today's rule).
    max_sustained_rate: float | None = None
    notes: list[str] = Field(default_factory=list)


class RunMeta(BaseModel):
    """Where, when and how the run was made."""

    model_config = _MODEL

    started: str | None = None
    command: str | None = None
    cpus: int | None = None
    machine: str | None = None
    python: str | None = None
    quick: bool | None = None
    backend: str | None = None
    backend_delay_ms: float | None = None
    duration_s: float | None = None

    @classmethod
    def here(cls, prog: str, argv: list[str] | None, started: datetime, **fields: Any) -> RunMeta:
        """This machine, this Python, and the command as it was typed (`argv`: its arguments,
        None for the process's own)."""
        cores = psutil.cpu_count()
        return cls(
            started=started.isoformat(timespec="seconds"),
            command=f"{prog} " + " ".join(argv if argv is not None else sys.argv[1:]),
            cpus=cores,
            machine=f"{platform.system()} {platform.machine()}, {cores} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            python=platform.python_version(),
            **fields,
        )


class BenchResults(BaseModel):
    """A whole run: its :class:`RunMeta` and every case, in the order they ran."""

    model_config = _MODEL

    meta: RunMeta = Field(default_factory=RunMeta)
    cases: list[CaseResult] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> BenchResults:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def save(self, path: Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2), encoding="utf-8")
