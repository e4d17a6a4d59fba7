"""The worker's spans of one batch, while traces are on (shared/tracing.py, docs/tracing.md).

Each message of a batch gets its own ``receive`` span (kind CONSUMER) in the trace its
producer started (its ``traceparent`` attribute, else SQS's ``AWSTraceHeader``; neither: a
new trace), from the moment the long poll returned to the end of the worker's work on it,
with the steps as children:

- ``decode``; or ``dead-letter`` (a poison message: from the decode to its delete from the
  queue, with the reason; its trace ends there);
- ``hand-off`` (kind PRODUCER): to the server(s) and back, whose context goes on the wire so
  that the server's span is its child;
- ``delete``, or ``return`` (made visible again: not confirmed, or behind an earlier message of
  its FIFO group).

The consumer tells a :class:`BatchTrace` what happened at each step; the spans take their
times from those calls. Nothing of this runs while traces are off (the consumer holds None).
A message whose trace the sampler leaves out gets no steps and carries no context to the
server, which then makes no span either (its cost: the receive span's sampling decision).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shared.envelope import Envelope
from shared.tracing import AWS_TRACE_HEADER, CARRIER_KEYS, MESSAGING_SYSTEM, Tracing, queue_name
from shared.wire import Delivery

if TYPE_CHECKING:
    from opentelemetry.trace import Span

#: Rooms named on a span at most (a message may name up to MAX_MESSAGE_ROOMS).
MAX_ROOMS_NAMED = 20


@dataclass
class _Traced:
    receive: Span
    outcome: str = "received"
    pending: Span | None = None  # a step begun and not ended (hand-off, dead-letter)
    steps: list[str] = field(default_factory=list)


class BatchTrace:
    """The spans of one received batch. Usage (worker/consumer.py)::

    trace = BatchTrace(tracing, queue_url, messages, polled_ns)
    trace.decoded(message, envelope)      # or dead_lettered(...), kept(...), held(...)
    deliveries = trace.hand_off(deliveries)
    trace.handed(confirmed)
    trace.deleted(messages); trace.returned(messages)
    trace.end()                           # always, last
    """

    def __init__(
        self, tracing: Tracing, queue_url: str, messages: list[dict[str, Any]], polled_ns: int
    ) -> None:
        from opentelemetry.trace import SpanKind

        self._tracer = tracing.tracer
        self._tracing = tracing
        self._mark = polled_ns
        self._spans: dict[str, _Traced] = {}
        queue = queue_name(queue_url)
        for message in messages:
            message_id = message["MessageId"]
            system = message.get("Attributes", {})
            attributes: dict[str, Any] = {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": message_id,
                "messaging.batch.message_count": len(messages),
            }
            count = system.get("ApproximateReceiveCount")
            if count is not None and str(count).isdigit():
                attributes["messaging.sqs.receive_count"] = int(count)
            span = self._tracer.start_span(
                "receive",
                context=self._parent(message),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                start_time=polled_ns,
            )
            if span.is_recording():
                self._spans[message_id] = _Traced(span)
            # Not sampled: no steps and no context on the wire, so the server makes no span
            # either; its receive span records nothing and needs no end.

    def _parent(self, message: dict[str, Any]) -> Any:
        carried = message.get("MessageAttributes") or {}
        carrier = {
            key: value["StringValue"]
            for key in CARRIER_KEYS
            if isinstance(value := carried.get(key), dict)
            and isinstance(value.get("StringValue"), str)
        }
        if carrier:
            return self._tracing.extract(carrier)
        header = message.get("Attributes", {}).get(AWS_TRACE_HEADER)
        return self._tracing.extract_xray(header) if isinstance(header, str) else None

    def _step(
        self,
        message_id: str,
        name: str,
        start: int | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        from opentelemetry import trace

        traced = self._spans[message_id]
        traced.steps.append(name)
        return self._tracer.start_span(
            name,
            context=trace.set_span_in_context(traced.receive),
            start_time=self._mark if start is None else start,
            attributes=attributes,
        )

    def _advance(self) -> int:
        self._mark = now = time.time_ns()
        return now

    # --- decoding -------------------------------------------------------------------------------
    def decoded(self, message: dict[str, Any], envelope: Envelope) -> None:
        """`message` decoded into `envelope`: a ``decode`` span since the previous step."""
        traced = self._spans.get(message["MessageId"])
        if traced is None:
            self._advance()
            return
        rooms = list(envelope.rooms)
        traced.receive.set_attributes(
            {
                "sqs_relay.event": envelope.event,
                "sqs_relay.namespace": envelope.namespace,
                "sqs_relay.rooms": [str(room) for room in rooms[:MAX_ROOMS_NAMED]],
                "sqs_relay.room_count": len(rooms),
            }
        )
        span = self._step(message["MessageId"], "decode")
        span.end(end_time=self._advance())

    def dead_lettered(self, message: dict[str, Any], code: str, reason: str) -> None:
        """`message` cannot be decoded and went to the dead-letter queue: a ``dead-letter``
        span, ended when it is deleted from the queue."""
        from opentelemetry.trace import Status, StatusCode

        traced = self._spans.get(message["MessageId"])
        if traced is None:
            self._advance()
            return
        span = self._step(
            message["MessageId"],
            "dead-letter",
            attributes={"sqs_relay.dead_letter.reason": code, "error.type": code},
        )
        span.set_status(Status(StatusCode.ERROR, reason[:200]))
        traced.pending, traced.outcome = span, "dead_lettered"
        self._advance()

    def kept(self, message: dict[str, Any], code: str, reason: str) -> None:
        """`message` cannot be decoded and there is no dead-letter queue: it stays."""
        from opentelemetry.trace import Status, StatusCode

        traced = self._spans.get(message["MessageId"])
        if traced is None:
            self._advance()
            return
        span = self._step(message["MessageId"], "decode", attributes={"error.type": code})
        span.set_status(Status(StatusCode.ERROR, reason[:200]))
        span.end(end_time=self._advance())
        traced.outcome = "undeliverable"

    def held(self, message: dict[str, Any]) -> None:
        """FIFO: `message` waits behind an earlier message of its group that stays."""
        traced = self._spans.get(message["MessageId"])
        if traced is not None:
            traced.outcome = "held"

    # --- the hand-off ---------------------------------------------------------------------------
    def hand_off(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Begin each delivery's ``hand-off`` span; the deliveries carrying its context."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        carried = []
        for delivery in deliveries:
            traced = self._spans.get(delivery.message_id)
            if traced is None:
                carried.append(delivery)
                continue
            traced.steps.append("hand-off")
            span = self._tracer.start_span(
                "hand-off",
                context=trace.set_span_in_context(traced.receive),
                kind=SpanKind.PRODUCER,
                start_time=self._mark,
            )
            traced.pending = span
            carrier = self._tracing.carrier(trace.set_span_in_context(span))
            carried.append(replace(delivery, trace=carrier or None))
        return carried

    def handed(self, confirmed: set[str]) -> None:
        """The servers answered (or the wait ended): end the ``hand-off`` spans."""
        end = self._advance()
        for message_id, traced in self._spans.items():
            if traced.pending is None or traced.steps[-1:] != ["hand-off"]:
                continue
            ok = message_id in confirmed
            traced.pending.set_attribute("sqs_relay.confirmed", ok)
            traced.pending.end(end_time=end)
            traced.pending = None
            traced.outcome = "confirmed" if ok else "not_confirmed"

    # --- after ----------------------------------------------------------------------------------
    def deleted(self, messages: Iterable[dict[str, Any]]) -> None:
        """Deleted from the queue: a ``delete`` span (a dead-lettered message's
        ``dead-letter`` span ends here instead)."""
        start, end = self._mark, self._advance()
        for message in messages:
            traced = self._spans.get(message["MessageId"])
            if traced is None:
                continue
            if traced.pending is not None:  # dead-lettered
                traced.pending.end(end_time=end)
                traced.pending = None
                continue
            self._step(message["MessageId"], "delete", start).end(end_time=end)
            traced.outcome = "delivered"

    def returned(self, messages: Iterable[dict[str, Any]], *, stopping: bool) -> None:
        """Made visible again (`stopping`: because the worker stops): a ``return`` span."""
        start, end = self._mark, self._advance()
        for message in messages:
            traced = self._spans.get(message["MessageId"])
            if traced is None:
                continue
            self._step(message["MessageId"], "return", start).end(end_time=end)
            if stopping:
                traced.outcome = "returned_on_shutdown"
            elif traced.outcome != "held":
                traced.outcome = "returned"

    def end(self) -> None:
        """End every span still open; each ``receive`` says the message's outcome."""
        end = time.time_ns()
        for traced in self._spans.values():
            if traced.pending is not None:
                traced.pending.end(end_time=end)
            traced.receive.set_attribute("sqs_relay.outcome", traced.outcome)
            traced.receive.end(end_time=end)
        self._spans.clear()
