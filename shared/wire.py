"""The ZeroMQ wire format between workers and servers. JSON only, never pickle.

The server binds a ROUTER socket, each worker connects a DEALER. Every ZeroMQ message is two
frames, ``[kind, body]``:

====================  ================  ======================================================
kind                  direction         body (JSON)
====================  ================  ======================================================
``ping``              worker → server   ``{"visibility_timeout_s": n}`` (or ``{}``): is a
                                         server there? n sizes the server's de-duplication
                                         window
``pong``              server → worker   ``{}``
``deliver``           worker → server   ``{"batch": int, "messages": [Delivery, ...]}``
``ack``               server → worker   ``{"batch": int, "ids": [MessageId, ...]}``: emitted
                                         (or already emitted before) and safe to delete;
                                         with ``"ready": false`` the server cannot take
                                         batches now (cluster mode: Redis is unreachable):
                                         the worker hands the batch to another server
====================  ================  ======================================================

What an ack promises: the server has put the event in its replay history and in the outgoing
queue of every client connected to its rooms at that moment. It does not promise that a
client's socket took it: a client that drops before its queue is flushed misses it, and gets
it back by resuming (offsets, within the replay window), not by redelivery from SQS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.envelope import DecodeError, Envelope
from shared.tracing import clean_carrier

PING = b"ping"
PONG = b"pong"
DELIVER = b"deliver"
ACK = b"ack"
KINDS = frozenset({PING, PONG, DELIVER, ACK})


class WireError(ValueError):
    """A ZeroMQ message that does not follow this module's format."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One SQS message on its way to the server: the envelope plus where it came from.

    As JSON: ``{"id", "event", "data", "room", "user", "namespace", "key", "version",
    "sent_ms", "received_ms", "group"}``, and ``"trace"`` only while traces are on (the W3C
    ``traceparent``/``tracestate`` of the worker's hand-off span: shared/tracing.py; a server
    drops anything else in it); ``room`` and ``user`` are null, a string or a list, as in the
    envelope (a server that knows no ``user`` would take a message for users alone
    as one for everyone, and one that knows no ``key`` keeps no state: upgrade servers before
    workers).
    """

    message_id: str
    envelope: Envelope
    sent_ms: int | None = None  # SQS SentTimestamp, ms since the epoch
    received_ms: int | None = None  # when the worker received it from SQS, ms since the epoch
    #: A FIFO queue's MessageGroupId: the server emits none of a group's later messages of a
    #: batch once one of them failed (the worker returns them with it, in order).
    group: str | None = None
    #: The trace context the server's span continues (shared/tracing.py); None: not traced.
    trace: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        e = self.envelope
        value = {
            "id": self.message_id,
            "event": e.event,
            "data": e.data,
            "room": e.room,
            "user": e.user,
            "namespace": e.namespace,
            "key": e.key,
            "version": e.version,
            "sent_ms": self.sent_ms,
            "received_ms": self.received_ms,
            "group": self.group,
        }
        if self.trace is not None:
            value["trace"] = self.trace
        return value

    @classmethod
    def from_json(cls, value: Any) -> Delivery:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise WireError(f"delivery must be an object with a string 'id', got {value!r:.200}")
        try:
            envelope = Envelope(
                event=value.get("event"),  # type: ignore[arg-type]
                data=value.get("data"),
                room=value.get("room"),
                namespace=value.get("namespace", "/"),
                user=value.get("user"),
                key=value.get("key"),
                version=value.get("version"),
            )
        except DecodeError as exc:
            raise WireError(exc.reason) from None
        sent_ms, received_ms = value.get("sent_ms"), value.get("received_ms")
        group = value.get("group")
        return cls(
            value["id"],
            envelope,
            sent_ms if isinstance(sent_ms, int) else None,
            received_ms if isinstance(received_ms, int) else None,
            group if isinstance(group, str) else None,
            clean_carrier(value["trace"]) if "trace" in value else None,
        )


def encode(kind: bytes, body: dict[str, Any] | None = None) -> list[bytes]:
    """Frames for one ZeroMQ message."""
    return [kind, json.dumps(body or {}, separators=(",", ":")).encode()]


def decode(frames: list[bytes]) -> tuple[bytes, dict[str, Any]]:
    """``(kind, body)`` from the frames of one message (the ROUTER's identity already removed)."""
    if len(frames) != 2 or frames[0] not in KINDS:
        raise WireError(f"expected [kind, body] with kind in {sorted(KINDS)}, got {frames!r:.200}")
    try:
        body = json.loads(frames[1])
    except (ValueError, RecursionError) as exc:
        raise WireError(f"{frames[0].decode()} body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WireError(f"{frames[0].decode()} body must be a JSON object")
    return frames[0], body


def ping(visibility_timeout_s: float | None = None) -> list[bytes]:
    """A worker's ping; it tells the server the queue's visibility timeout when it knows it."""
    body = {} if visibility_timeout_s is None else {"visibility_timeout_s": visibility_timeout_s}
    return encode(PING, body)


def parse_ping(body: dict[str, Any]) -> float | None:
    """The visibility timeout a ping reports, if it is a sane number of seconds."""
    value = body.get("visibility_timeout_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 43_200:
        return float(value)
    return None


def deliver(batch: int, deliveries: list[Delivery]) -> list[bytes]:
    return encode(DELIVER, {"batch": batch, "messages": [d.to_json() for d in deliveries]})


def parse_deliver(body: dict[str, Any]) -> tuple[int, list[Delivery]]:
    batch, messages = body.get("batch"), body.get("messages")
    if not isinstance(batch, int) or not isinstance(messages, list):
        raise WireError("deliver body needs an int 'batch' and a list 'messages'")
    return batch, [Delivery.from_json(m) for m in messages]


def ack(batch: int, ids: list[str], *, ready: bool = True) -> list[bytes]:
    body: dict[str, Any] = {"batch": batch, "ids": ids}
    if not ready:
        body["ready"] = False
    return encode(ACK, body)


def ack_ready(body: dict[str, Any]) -> bool:
    """False when the server said it cannot take batches now."""
    return body.get("ready") is not False


def parse_ack(body: dict[str, Any]) -> tuple[int, list[str]]:
    batch, ids = body.get("batch"), body.get("ids")
    if not isinstance(batch, int) or not isinstance(ids, list):
        raise WireError("ack body needs an int 'batch' and a list 'ids'")
    return batch, [i for i in ids if isinstance(i, str)]
