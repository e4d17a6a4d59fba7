"""OpenTelemetry traces of each event's path, off by default (docs/tracing.md)."""

from __future__ import annotations

import importlib.util
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from shared.settings.fields import comment


class TracingSettings(BaseModel):
    """The switch for traces; every other OTEL_* variable is the OpenTelemetry SDK's own."""

    SECTION: ClassVar[str] = "Traces with OpenTelemetry (docs/tracing.md)"

    otel_traces_exporter: Literal["none", "otlp", "console"] = Field(
        "none",
        description="Where the processes send their spans: none (off), otlp or console.",
        json_schema_extra=comment(
            "Traces of each event's path (publish, the worker's receive, decode, hand-off and "
            "delete or dead-letter, the server's emit), off by default. otlp: export them over "
            "OTLP/HTTP; console: print them (debugging). Every other OTEL_* variable is read "
            "by the OpenTelemetry SDK from the environment (honcho exports .env to it): "
            "OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318), OTEL_SERVICE_NAME, "
            "OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on: "
            "a producer's sampling decision holds end to end), OTEL_BSP_*. Needs the "
            "`tracing` extra (pip install 'sqs-push-relay[tracing]'; the image has it)."
        ),
    )

    @field_validator("otel_traces_exporter")
    @classmethod
    def _sdk_installed(cls, value: str) -> str:
        module = _NEEDS.get(value)
        if module is None:
            return value
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise ValueError(
                f"{value} needs the OpenTelemetry SDK and its exporter, which are not "
                "installed: pip install 'sqs-push-relay[tracing]' (or leave it at none)"
            )
        return value


#: What each exporter imports (checked at start, imported only when traces are on).
_NEEDS = {"otlp": "opentelemetry.exporter.otlp.proto.http", "console": "opentelemetry.sdk"}
