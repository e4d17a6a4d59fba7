"""The one command a producer may send, ``relay:disconnect``: parsed only in its own shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from producer.__main__ import parse_args
from shared.envelope import (
    DISCONNECT_EVENT,
    MAX_REASON_LENGTH,
    DecodeError,
    Envelope,
    parse_body,
)


def parse(body: Any, attributes: dict[str, Any] | None = None) -> Envelope:
    return parse_body(json.dumps(body), default_event="message", attributes=attributes)


def test_a_disconnect_for_one_user_or_a_list_is_a_control_envelope_with_its_reason() -> None:
    one = parse({"event": DISCONNECT_EVENT, "user": "alice", "data": {"reason": "logged out"}})
    assert (one.control, one.users, one.reason) == (True, ("alice",), "logged out")
    many = parse({"event": DISCONNECT_EVENT, "user": ["alice", "bob"]})
    assert (many.control, many.users, many.reason, many.data) == (
        True,
        ("alice", "bob"),
        None,
        None,
    )
    # an ordinary event is not one
    assert parse({"event": "shipped", "user": "alice"}).control is False


def test_a_disconnect_routed_by_message_attributes_is_parsed_like_its_envelope() -> None:
    # Given a raw body (the data) with the event and user as SQS message attributes
    envelope = parse(
        {"reason": "banned"},
        attributes={"event": DISCONNECT_EVENT, "user": "alice"},
    )
    assert (envelope.control, envelope.users, envelope.reason) == (True, ("alice",), "banned")


def test_a_disconnect_round_trips_through_its_body() -> None:
    envelope = Envelope(DISCONNECT_EVENT, {"reason": "r"}, user=("alice", "bob"))
    assert parse_body(envelope.to_body(), default_event="message") == envelope


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({}, "needs 'user'"),
        ({"user": "alice", "room": "shop"}, "takes no 'room'"),
        ({"user": "alice", "namespace": "/chat"}, "takes no 'namespace'"),
        ({"user": "alice", "data": "logged out"}, "'data' must be null or an object"),
        ({"user": "alice", "data": {"reason": 7}}, "'reason' must be a string"),
        ({"user": "alice", "data": {"reason": "x", "ban": True}}, "may hold 'reason' only"),
        (
            {"user": "alice", "data": {"reason": "x" * (MAX_REASON_LENGTH + 1)}},
            f"at most {MAX_REASON_LENGTH} characters",
        ),
        ({"user": ""}, "a user must be a non-empty string"),
    ],
)
def test_a_disconnect_in_any_other_shape_is_refused_as_bad_envelope_saying_why(
    fields: dict[str, Any], why: str
) -> None:
    with pytest.raises(DecodeError) as refused:
        parse({"event": DISCONNECT_EVENT, **fields})
    assert refused.value.code == "bad_envelope"
    assert why in refused.value.reason


def test_a_reason_of_exactly_the_limit_is_taken() -> None:
    reason = "x" * MAX_REASON_LENGTH
    assert parse({"event": DISCONNECT_EVENT, "user": "a", "data": {"reason": reason}}).reason


@pytest.mark.parametrize("event", ["relay:disconnected", "relay:expired", "relay:x", "disconnect"])
def test_every_other_reserved_event_is_still_refused_even_with_a_user(event: str) -> None:
    with pytest.raises(DecodeError) as refused:
        parse({"event": event, "user": "alice"})
    assert refused.value.code == "bad_envelope"
    assert "reserved" in refused.value.reason


def test_the_producer_command_line_writes_the_disconnect_command() -> None:
    [body] = parse_args(["--disconnect", "alice", "--disconnect", "bob", "--reason", "banned"])
    assert json.loads(body) == {
        "event": DISCONNECT_EVENT,
        "data": {"reason": "banned"},
        "user": ["alice", "bob"],
    }


def test_the_producer_command_line_refuses_a_reason_without_disconnect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--event", "e", "--reason", "banned"])
    assert exited.value.code == 2
    assert "--reason goes with --disconnect" in capsys.readouterr().err
