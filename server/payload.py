"""What clients receive, and how it is encoded: strictly, and each message's data only once.

Every event the relay emits carries one argument, :func:`client_payload` (documented in
docs/protocol.md). A message's ``data`` is encoded to JSON once, as an ``orjson.Fragment``
that every room's payload and every replay entry share: python-socketio encodes one packet
per emit (per room), and without the fragment each room would encode the whole data again.

:class:`ClientJSON` is the JSON module python-socketio and engine.io use for every packet
(``AsyncServer(json=ClientJSON)``). It writes with orjson, which cannot write ``NaN`` or
``Infinity`` (browsers' ``JSON.parse`` refuses them and socket.io-client then drops the whole
connection): the second line behind the decoders, which refuse them first.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import orjson

from shared.wire import Delivery

#: Every client of a namespace is in this room; events without a room go to it. It stands in
#: for a namespace-wide broadcast so that a resuming client joins it only after its replay.
BROADCAST_ROOM = "relay:all"


def target_room(room: str | None) -> str:
    return room if room is not None else BROADCAST_ROOM


#: What a replay entry costs beyond its data: the payload dict, its keys, the entry itself.
ENTRY_OVERHEAD_BYTES = 600


def encode_data(data: Any) -> tuple[orjson.Fragment, int]:
    """``data`` as JSON, once, and its size in bytes; ValueError if it holds something JSON
    cannot say (NaN, Infinity)."""
    try:
        encoded = orjson.dumps(data)
    except TypeError:
        # orjson holds integers to 64 bits; the standard library has no such limit.
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        encoded = text.encode("utf-8", "surrogatepass")
    else:
        # orjson writes a non-finite float as null: only data with a null can hold one.
        if b"null" in encoded and _has_non_finite(data):
            raise ValueError("data holds NaN or Infinity, which is not JSON")
    return orjson.Fragment(encoded), len(encoded)


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def client_payload(
    delivery: Delivery, room: str | None, offset: int, epoch: str, data: orjson.Fragment
) -> dict[str, Any]:
    """The one argument every client event carries (docs/protocol.md); with the envelope's
    ``key`` and ``version`` when it has them."""
    payload = {
        "id": delivery.message_id,
        "data": data,
        "room": room,
        "offset": offset,
        "epoch": epoch,
        "sent_ms": delivery.sent_ms,
        "received_ms": delivery.received_ms,
        "emitted_ms": int(time.time() * 1000),
    }
    return payload | _state_fields(delivery)


def _state_fields(delivery: Delivery) -> dict[str, Any]:
    envelope = delivery.envelope
    fields: dict[str, Any] = {}
    if envelope.key is not None:
        fields["key"] = envelope.key
    if envelope.version is not None:
        fields["version"] = envelope.version
    return fields


# Cluster mode (server/history/cluster.py) builds the same payload as JSON bytes in two steps:
# what is the same in every room once, when the message is appended to Redis (which stores it
# once however many rooms it goes to), and each room's part as every server's feed reader
# emits it. The same fields as client_payload's; the room's come last.


def payload_head(delivery: Delivery, data: orjson.Fragment, emitted_ms: int) -> bytes:
    """:func:`client_payload`'s fields that every room shares, as a JSON object not yet closed:
    :func:`payload_in_room` completes it."""
    return orjson.dumps(
        {
            "id": delivery.message_id,
            "data": data,
            "sent_ms": delivery.sent_ms,
            "received_ms": delivery.received_ms,
            "emitted_ms": emitted_ms,
        }
        | _state_fields(delivery)
    )[:-1]


def payload_in_room(head: bytes, room: str | None, offset: int, epoch: bytes) -> bytes:
    """The whole payload: :func:`payload_head`'s ``head`` and one room's part, as JSON."""
    room_json, offset_json = orjson.dumps(room), b"%d" % offset
    return b"".join(
        (head, b',"room":', room_json, b',"offset":', offset_json, b',"epoch":"', epoch, b'"}')
    )


class ClientJSON:
    """The ``json`` module python-socketio and engine.io encode and decode packets with."""

    @staticmethod
    def dumps(obj: Any, **_options: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            # An integer beyond 64 bits in a relayed client event: the standard library
            # writes it; allow_nan=False keeps it strict.
            return json.dumps(obj, allow_nan=False, separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes, **_options: Any) -> Any:
        # The standard library, so that a client's NaN reaches the handlers, which answer
        # with an error, instead of failing the whole packet without a word.
        return json.loads(text)
