"""The message envelope: how an SQS body becomes a Socket.IO event.

A body that is a JSON object with an ``"event"`` key and no keys beyond
``event``/``data``/``room``/``namespace`` is an envelope; any other JSON value is the
``data`` of the default event. Bodies that can never be delivered raise :class:`DecodeError`
with a reason a person can act on.

>>> parse_body('{"event": "order", "data": {"id": 7}, "room": "shop"}', default_event="message")
Envelope(event='order', data={'id': 7}, room='shop', namespace='/')
>>> parse_body('[1, 2]', default_event="message")
Envelope(event='message', data=[1, 2], room=None, namespace='/')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ENVELOPE_KEYS = frozenset({"event", "data", "room", "namespace"})

#: Event names Socket.IO itself uses; a producer must not fake them.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class DecodeError(ValueError):
    """The body can never become an event; ``reason`` says why (logged, counted, dead-lettered)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Envelope:
    """What to emit: event name, JSON data, optional room, Socket.IO namespace."""

    event: str
    data: Any
    room: str | None = None
    namespace: str = "/"

    def __post_init__(self) -> None:
        _check_event(self.event)
        if self.room is not None and (not isinstance(self.room, str) or not self.room):
            raise DecodeError(
                f"envelope field 'room' must be a non-empty string or null, got {self.room!r}"
            )
        if not isinstance(self.namespace, str) or not self.namespace.startswith("/"):
            raise DecodeError(
                "envelope field 'namespace' must be a string starting with '/', "
                f"got {self.namespace!r}"
            )


def parse_body(body: str, *, default_event: str) -> Envelope:
    """Turn an SQS message body into an :class:`Envelope`, or raise :class:`DecodeError`."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError("body is JSON nested too deeply to decode") from None
    if isinstance(value, dict) and "event" in value and value.keys() <= ENVELOPE_KEYS:
        return Envelope(
            event=value["event"],
            data=value.get("data"),
            room=value.get("room"),
            namespace=value.get("namespace", "/"),
        )
    return Envelope(event=default_event, data=value)


def _check_event(event: object) -> None:
    if not isinstance(event, str) or not event:
        raise DecodeError(f"envelope field 'event' must be a non-empty string, got {event!r}")
    if event in RESERVED_EVENTS:
        raise DecodeError(f"envelope field 'event' is {event!r}, a name reserved by Socket.IO")
