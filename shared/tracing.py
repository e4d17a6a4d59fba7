"""OpenTelemetry traces of one event's path: producer -> SQS -> worker -> ZeroMQ -> server.

Off by default. :func:`start_tracing` sets up the SDK in a process when OTEL_TRACES_EXPORTER
is ``otlp`` or ``console`` (shared/settings/tracing.py), and returns None otherwise: then no
OpenTelemetry module is imported at all, and the hot paths only test that None. Everything
else about the SDK (endpoint, sampler, service name, batching) comes from its own OTEL_*
variables. The trace context travels as W3C ``traceparent``/``tracestate``:

- on the SQS message, as String message attributes that :func:`message_attributes` makes for
  whatever span is current in the caller (the producer library injects them whenever the
  OpenTelemetry API is installed, so that an instrumented application's trace goes on);
  SQS's own ``AWSTraceHeader`` (X-Ray) is read when there is no ``traceparent``;
- across the ZeroMQ hand-off, as the delivery's ``trace`` carrier (shared/wire.py).

Usage::

    tracing = start_tracing(settings, service="sqs-relay-worker")  # None: off
    if tracing is not None:
        parent = tracing.extract(carrier)            # a Context for start_span(context=)
        span = tracing.tracer.start_span("decode", context=parent)
        ...
        tracing.close(timeout_s=1.0)                 # flush what is batched, at the stop
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from shared.settings import Settings

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The carrier keys that travel on a message and on the wire; nothing else is kept.
CARRIER_KEYS = (TRACEPARENT, TRACESTATE)
#: The longest value kept of each (W3C: traceparent is 55 characters, tracestate at most 512).
MAX_CARRIER_VALUE = 512
#: The SQS system attribute X-Ray's header arrives in (asked for only while traces are on).
AWS_TRACE_HEADER = "AWSTraceHeader"
#: The messaging system, as OpenTelemetry's semantic conventions name it.
MESSAGING_SYSTEM = "aws_sqs"


class Tracing:
    """The SDK as one process set it up: its tracer, the propagators, and the flush at stop."""

    def __init__(self, provider: TracerProvider, scope: str) -> None:
        from opentelemetry import propagate

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(scope)
        self._propagator = propagate.get_global_textmap()
        self._xray: Any = None

    def extract(self, carrier: Mapping[str, str] | None) -> Context | None:
        """The parent context a carrier names (None: none, start a new trace)."""
        if not carrier:
            return None
        return self._propagator.extract(dict(carrier))

    def extract_xray(self, header: str) -> Context | None:
        """The parent context of an ``AWSTraceHeader`` (X-Ray's ``Root=...;Parent=...``)."""
        if self._xray is None:
            from opentelemetry.propagators.aws import AwsXRayPropagator

            self._xray = AwsXRayPropagator()
        return self._xray.extract({"X-Amzn-Trace-Id": header})  # type: ignore[no-any-return]

    def carrier(self, context: Context) -> dict[str, str]:
        """The W3C carrier of a context, for the wire."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=context)
        return {k: v for k, v in carrier.items() if k in CARRIER_KEYS}

    def close(self, timeout_s: float) -> None:
        """Export what is batched (within `timeout_s`) and stop the exporter."""
        self.provider.force_flush(int(max(0.0, timeout_s) * 1000))
        self.provider.shutdown()


def start_tracing(settings: Settings, service: str) -> Tracing | None:
    """Set up OpenTelemetry's SDK for this process when OTEL_TRACES_EXPORTER is on; None when
    it is ``none`` (nothing imported). `service` is the service name unless OTEL_SERVICE_NAME
    (or OTEL_RESOURCE_ATTRIBUTES) names one."""
    exporter_name = settings.otel_traces_exporter
    if exporter_name == "none":
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER(_ARG)
    exporter: SpanExporter
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, ...
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global, so that the producer library (and any instrumentation) in this process uses it.
    trace.set_tracer_provider(provider)
    logger.info(
        "Traces on: %s exporter, service %s, sampler %s",
        exporter_name,
        provider.resource.attributes.get(SERVICE_NAME),
        provider.sampler.get_description(),
    )
    return Tracing(provider, f"sqs_push_relay.{service}")


def message_attributes() -> dict[str, dict[str, str]]:
    """SQS message attributes carrying the current span's context; {} without a current span
    or without the OpenTelemetry API installed."""
    try:
        from opentelemetry import propagate
    except ImportError:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {
        key: {"DataType": "String", "StringValue": value}
        for key, value in carrier.items()
        if key in CARRIER_KEYS
    }


@contextmanager
def publishing(queue_url: str, count: int) -> Iterator[None]:
    """A ``publish`` span (kind PRODUCER) around one SendMessage(Batch) call, current while it
    runs so that :func:`message_attributes` puts it on the messages. A no-op span unless the
    caller set up an SDK; nothing at all without the OpenTelemetry API."""
    try:
        from opentelemetry import trace
    except ImportError:
        yield
        return
    tracer = trace.get_tracer("sqs_push_relay.producer")
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "send",
        "messaging.destination.name": queue_name(queue_url),
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with tracer.start_as_current_span(
        "publish", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ):
        yield


def queue_name(queue_url: str) -> str:
    """The queue's name, the last part of its URL.

    >>> queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/events.fifo")
    'events.fifo'
    """
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def clean_carrier(value: Any) -> dict[str, str] | None:
    """A carrier from the wire, or None: only the W3C keys, each a string of bounded length.

    >>> clean_carrier({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "x": "y"})
    {'traceparent': '00-11111111111111111111111111111111-2222222222222222-01'}
    >>> clean_carrier("00-...") is None, clean_carrier({"traceparent": 7}) is None
    (True, True)
    """
    if not isinstance(value, dict):
        return None
    carrier = {
        key: text
        for key in CARRIER_KEYS
        if isinstance(text := value.get(key), str) and 0 < len(text) <= MAX_CARRIER_VALUE
    }
    return carrier if TRACEPARENT in carrier else None
