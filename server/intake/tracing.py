"""The server's span of each traced delivery, while traces are on (docs/tracing.md).

A worker's ``hand-off`` span travels with the delivery (its ``trace`` carrier,
shared/wire.py); the history tells :class:`IntakeTracing` what became of each delivery
(:data:`server.history.base.Observe`), and this makes the span that continues the trace in
this process: ``emit`` (with the clients its rooms reached), ``de-duplicate`` (a redelivery
every room had already) or, in cluster mode, ``append`` (into the shared history, from which
every server emits it: those emits are not in the trace).
"""

from __future__ import annotations

from typing import Any

from server.adapters.lookups import member_count
from server.payload import target_room
from shared.tracing import MESSAGING_SYSTEM, Tracing
from shared.wire import Delivery

#: The span for each outcome the history reports (server/history/base.py's OUTCOMES).
SPAN_NAMES = {
    "emitted": "emit",
    "stale": "emit",
    "failed": "emit",
    "held": "emit",
    "duplicate": "de-duplicate",
    "appended": "append",
    "unavailable": "append",
}
#: Outcomes that leave the message unconfirmed (the worker returns it; SQS redelivers it).
NOT_CONFIRMED = frozenset({"failed", "held", "unavailable"})


class IntakeTracing:
    """Makes the span of each traced delivery; its :meth:`observe` is the history's Observe."""

    def __init__(self, tracing: Tracing, sio: Any) -> None:
        self._tracing = tracing
        self._sio = sio

    def observe(self, delivery: Delivery, outcome: str, started_ns: int, ended_ns: int) -> None:
        if delivery.trace is None:
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        span = self._tracing.tracer.start_span(
            SPAN_NAMES.get(outcome, "emit"),
            context=self._tracing.extract(delivery.trace),
            kind=SpanKind.CONSUMER,
            start_time=started_ns,
        )
        if not span.is_recording():  # not sampled here: nothing to describe
            return
        envelope = delivery.envelope
        span.set_attributes(
            {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "process",
                "messaging.message.id": delivery.message_id,
                "sqs_relay.outcome": outcome,
                "sqs_relay.event": envelope.event,
                "sqs_relay.namespace": envelope.namespace,
                "sqs_relay.room_count": len(envelope.rooms),
            }
        )
        if outcome == "emitted":
            # Who is in the rooms now, just after the emit: the clients it was queued for.
            span.set_attribute(
                "sqs_relay.recipients",
                sum(
                    member_count(self._sio, envelope.namespace, target_room(room))
                    for room in envelope.rooms
                ),
            )
        if outcome in NOT_CONFIRMED:
            span.set_status(Status(StatusCode.ERROR, f"not confirmed: {outcome}"))
        span.end(end_time=ended_ns)
