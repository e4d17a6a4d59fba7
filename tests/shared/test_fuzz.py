"""Property tests: whatever a producer or a client sends, the answer is a value or a clear,
typed error, never an unhandled exception."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.history.replay import RecoveryFailed, ReplayBuffer
from server.payload import encode_data
from server.sessions.requests import client_event_error, room_and_since, room_error
from shared.envelope import DecodeError, Envelope, parse_body, sns_attributes, sqs_attributes
from shared.settings import load_settings

#: Numbers a producer's json.dumps writes and no strict decoder holds.
hostile_numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 4301])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "event": json_values,
        "data": json_values,
        "room": json_values | st.lists(st.text(max_size=5), max_size=3),
        "user": json_values | st.lists(st.text(max_size=5), max_size=3),
        "namespace": json_values,
    },
)
attribute = st.fixed_dictionaries(
    {},
    optional={
        "DataType": st.sampled_from(["String", "String.Array", "Number", "Binary", ""]) | st.text(),
        "StringValue": st.text() | st.integers(),
        "Type": st.sampled_from(["String", "String.Array"]),
        "Value": st.text(),
    },
)
attributes = st.dictionaries(
    st.sampled_from(["event", "room", "user", "namespace", "other"]), attribute
)
deep_arrays = st.integers(min_value=90, max_value=100_000).map(lambda n: "[" * n + "]" * n)


def check(body: str, routing: Any = None) -> None:
    try:
        envelope = parse_body(body, default_event="message", max_bytes=10_000, attributes=routing)
    except DecodeError as exc:
        assert exc.code and exc.reason
    else:
        assert isinstance(envelope, Envelope)
        # whatever passes can be emitted, strictly: what clients are sent (no NaN, no Infinity)
        encode_data(envelope.data)
        json.dumps(envelope.data, allow_nan=False)


@settings(max_examples=300)
@given(st.text())
def test_any_text_body(body: str) -> None:
    check(body)


@settings(max_examples=300)
@given(envelope_like | json_values)
def test_any_json_body(value: Any) -> None:
    check(json.dumps(value))


@settings(max_examples=200)
@given(st.lists(hostile_numbers | st.integers().map(str), min_size=1, max_size=4))
def test_bodies_with_numbers_no_decoder_holds(numbers: list[str]) -> None:
    body = '{"event": "e", "data": [' + ", ".join(numbers) + "]}"
    check(body)
    if any(n in ("NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 4301) for n in numbers):
        try:
            parse_body(body, default_event="message")
        except DecodeError as exc:
            assert exc.code in ("not_finite", "bad_number")
        else:
            raise AssertionError(f"accepted {body[:80]}")


@settings(max_examples=50)
@given(deep_arrays, st.sampled_from(["sqs", "sns"]))
def test_deep_string_array_room_attributes(deep: str, where: str) -> None:
    if where == "sqs":
        try:
            routing = sqs_attributes({"room": {"DataType": "String.Array", "StringValue": deep}})
        except DecodeError as exc:
            assert exc.code == "too_deep"
            return
        check("1", routing)
    else:
        wrapper = {
            "Type": "Notification",
            "TopicArn": "arn",
            "Message": "1",
            "MessageAttributes": {"room": {"Type": "String.Array", "Value": deep}},
        }
        check(json.dumps(wrapper))


@settings(max_examples=200)
@given(envelope_like, attributes)
def test_any_envelope_with_any_attributes(value: Any, raw: dict[str, Any]) -> None:
    try:
        routing = sqs_attributes(raw)
    except DecodeError:
        return
    check(json.dumps(value), routing)


@settings(max_examples=200)
@given(
    json_values,
    st.one_of(
        st.none(), json_values, st.dictionaries(st.sampled_from(["event", "room"]), json_values)
    ),
)
def test_any_sns_wrapper(message: Any, sns_attrs: Any) -> None:
    wrapper = {
        "Type": "Notification",
        "TopicArn": "arn",
        "Message": message,
        "MessageAttributes": sns_attrs,
    }
    check(json.dumps(wrapper))
    with contextlib.suppress(DecodeError):
        sns_attributes(sns_attrs)


SETTINGS = load_settings({})


@settings(max_examples=300)
@given(st.text(max_size=30) | st.sampled_from(["item_removed", "connect", "relay:x"]), json_values)
def test_any_client_event(event: str, data: Any) -> None:
    error = client_event_error(event, data, frozenset(SETTINGS.client_events), SETTINGS)
    assert error is None or isinstance(error, str)
    if event != "item_removed":
        assert error is not None


@settings(max_examples=300)
@given(json_values | envelope_like)
def test_any_join_request(request: Any) -> None:
    room, _since = room_and_since(request)
    error = room_error(room)
    assert error is None or isinstance(error, str)
    if error is None:
        assert isinstance(room, str) and room and not room.startswith("relay:")


EPOCH = "e0"


def test_any_resume_position_replays_or_refuses_with_a_reason() -> None:
    # Given a stream at offset 5 of the epoch "e0" that keeps its last three (3 to 5)
    replay = ReplayBuffer(window_s=60, max_events=3, max_bytes=1000, clock=lambda: 0.0)
    replay.reset(EPOCH)
    for offset in range(1, 6):
        replay.append(("/", None), offset, "e", {}, 10)
    outcomes: Counter[str] = Counter()

    # When a client resumes from any position, this server's epoch and offsets near the
    # stream's among them (random values alone would never name the epoch)
    @settings(max_examples=300)
    @given(st.just(EPOCH) | json_values, st.integers(min_value=-2, max_value=7) | json_values)
    def resume(epoch: Any, offset: Any) -> None:
        try:
            entries = replay.since(("/", None), epoch, offset)
        except RecoveryFailed as exc:
            assert exc.reason
            outcomes["refused"] += 1
        else:
            # Then what it gets is exactly what followed its offset
            assert epoch == EPOCH
            assert [e.offset for e in entries] == list(range(offset + 1, 6))
            outcomes["replayed"] += 1

    resume()

    # And both answers were reached: a replay and a refusal
    assert outcomes["replayed"] > 0 and outcomes["refused"] > 0, outcomes
