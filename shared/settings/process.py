"""The processes themselves: where the consumer runs, how a process stops, logs, collects
garbage and shows its metrics."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from shared.settings.fields import SEE_ABOVE, EmptyIsUnset, comment


class ProcessSettings(BaseModel):
    """How each process runs, whatever its job."""

    SECTION: ClassVar[str] = "Processes"

    consumer: Literal["process", "thread"] = Field(
        "process",
        description="process: python -m worker; thread: the same code in the server.",
        json_schema_extra=comment(
            "process: workers are their own processes (python -m worker; this design). thread: "
            "the very same worker code runs as WORKER_THREADS threads inside the server process, "
            "handing off over the same ZeroMQ socket (the in-process mode the benchmark compares "
            "against)."
        ),
    )
    worker_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="CONSUMER=thread: how many threads.",
        json_schema_extra=SEE_ABOVE,
    )
    shutdown_timeout_s: float = Field(
        4.0,
        gt=0,
        le=60,
        description="Graceful-stop budget in seconds; honcho SIGKILLs whatever still runs 5 s "
        "after Ctrl-C.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    gc_young_threshold: int = Field(
        10_000,
        ge=100,
        le=10_000_000,
        description="Server only: new objects between the garbage collector's young passes "
        "(Python's own: 700).",
        json_schema_extra=comment(
            "Server only: new objects between the garbage collector's young passes (Python's "
            "own: 700). What survives a young pass is set aside until a full pass as clients "
            "go (server/collector.py). Larger: fewer, longer passes, each of which holds the "
            "event loop."
        ),
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text (the default), or json: one JSON object per line, for log shippers.",
    )
    metrics_port: Annotated[int | None, EmptyIsUnset] = Field(
        None,
        ge=1,
        le=65535,
        description="Worker only: serve Prometheus /metrics on this port.",
        json_schema_extra=comment(
            "Worker only: serve Prometheus /metrics on this port. The Procfile sets it to "
            "honcho's $PORT for each worker (5100, 5101, ...); unset: no worker metrics endpoint."
        ),
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
