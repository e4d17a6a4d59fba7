from __future__ import annotations

import pytest

from shared import wire
from shared.envelope import Envelope
from shared.wire import Delivery, WireError


def test_a_batch_round_trips() -> None:
    deliveries = [
        Delivery("id-1", Envelope("order", {"n": 1}, "shop", "/"), 1_700_000_000_000),
        Delivery("id-2", Envelope("message", [1, 2]), None),
        Delivery("id-3", Envelope("dm", 1, user=("alice", "bob")), None),
        Delivery("id-4", Envelope("dm", 1, room="shop", user="alice"), None),
    ]
    kind, body = wire.decode(wire.deliver(7, deliveries))
    assert kind == wire.DELIVER
    assert wire.parse_deliver(body) == (7, deliveries)


def test_an_ack_round_trips() -> None:
    kind, body = wire.decode(wire.ack(3, ["a", "b"]))
    assert (kind, wire.parse_ack(body)) == (wire.ACK, (3, ["a", "b"]))


@pytest.mark.parametrize(
    "frames",
    [
        [b"deliver"],
        [b"what", b"{}"],
        [b"deliver", b"not json"],
        [b"deliver", b"[]"],
        [b"ping", b"{}", b"extra"],
    ],
)
def test_malformed_frames_raise_wire_error(frames: list[bytes]) -> None:
    with pytest.raises(WireError):
        wire.decode(frames)


@pytest.mark.parametrize(
    "body",
    [
        {"batch": "1", "messages": []},
        {"batch": 1, "messages": [{"event": "e"}]},
        {"batch": 1, "messages": [{"id": "x", "event": "connect"}]},
    ],
)
def test_a_bad_deliver_body_raises_wire_error(body: dict) -> None:
    with pytest.raises(WireError):
        wire.parse_deliver(body)


def test_an_ack_can_say_the_server_cannot_take_batches_now() -> None:
    _kind, body = wire.decode(wire.ack(3, [], ready=False))
    assert wire.parse_ack(body) == (3, []) and not wire.ack_ready(body)
    assert wire.ack_ready(wire.decode(wire.ack(3, ["a"]))[1])


def test_a_delivery_without_user_from_an_older_worker_has_no_user() -> None:
    body = {"id": "i", "event": "e", "data": 1, "room": "shop", "namespace": "/"}
    assert Delivery.from_json(body).envelope.rooms == ("shop",)


def test_a_delivery_with_a_bad_user_raises_wire_error() -> None:
    with pytest.raises(WireError, match="a user must be a non-empty string"):
        Delivery.from_json({"id": "i", "event": "e", "user": ""})
