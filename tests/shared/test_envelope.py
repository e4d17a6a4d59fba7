from __future__ import annotations

import pytest

from shared.envelope import DecodeError, Envelope, parse_body


def parse(body: str) -> Envelope:
    return parse_body(body, default_event="message")


def test_an_envelope_is_taken_apart() -> None:
    body = '{"event": "order", "data": {"id": 7}, "room": "shop", "namespace": "/admin"}'
    assert parse(body) == Envelope("order", {"id": 7}, "shop", "/admin")


def test_an_envelope_without_data_room_or_namespace_has_defaults() -> None:
    assert parse('{"event": "ping"}') == Envelope("ping", None, None, "/")


@pytest.mark.parametrize(
    "body", ['{"id": 1}', "[1, 2]", '"text"', "42", "null", '{"event": "x", "extra": 1}']
)
def test_any_other_json_is_the_data_of_the_default_event(body: str) -> None:
    import json

    assert parse(body) == Envelope("message", json.loads(body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ("", "body is not JSON"),
        ('{"event": 5}', "'event' must be a non-empty string"),
        ('{"event": ""}', "'event' must be a non-empty string"),
        ('{"event": "connect"}', "reserved by Socket.IO"),
        ('{"event": "e", "room": 3}', "'room' must be a non-empty string or null"),
        ('{"event": "e", "room": ""}', "'room' must be a non-empty string or null"),
        ('{"event": "e", "namespace": "admin"}', "'namespace' must be a string starting with '/'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_a_body_that_can_never_be_delivered_says_why(body: str, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse(body)
    assert reason in caught.value.reason
