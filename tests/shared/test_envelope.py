from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import (
    MAX_DEPTH,
    MAX_USER_LENGTH,
    RESERVED_EVENTS,
    RESERVED_PREFIX,
    SQS_MAX_BYTES,
    DecodeError,
    Envelope,
    parse_body,
    sqs_attributes,
)


def parse(body: str, max_bytes: int = 1000) -> Envelope:
    return parse_body(body, default_event="message", max_bytes=max_bytes)


def sns(message: object) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "sns-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:events",
            "Message": message,
        }
    )


def test_an_envelope_is_taken_apart() -> None:
    body = '{"event": "order", "data": {"id": 7}, "room": "shop", "namespace": "/admin"}'
    assert parse(body) == Envelope("order", {"id": 7}, "shop", "/admin")


def test_an_envelope_without_data_room_or_namespace_has_defaults() -> None:
    assert parse('{"event": "ping"}') == Envelope("ping", None, None, "/")


@pytest.mark.parametrize(
    "body", ['{"id": 1}', "[1, 2]", '"text"', "42", "null", '{"event": "x", "extra": 1}']
)
def test_any_other_json_is_the_data_of_the_default_event(body: str) -> None:
    assert parse(body) == Envelope("message", json.loads(body))


def test_an_sns_notification_is_unwrapped() -> None:
    assert parse(sns('{"event": "order", "data": 1}')) == Envelope("order", 1)
    assert parse(sns('{"plain": true}')) == Envelope("message", {"plain": True})


def test_a_body_at_the_size_limit_passes_and_one_byte_more_does_not() -> None:
    assert parse('"' + "é" * 4 + '"', max_bytes=10) == Envelope("message", "éééé")
    with pytest.raises(DecodeError) as caught:
        parse('"' + "é" * 4 + 'x"', max_bytes=10)
    assert caught.value.code == "too_large"
    assert "11 bytes, over the limit of 10" in caught.value.reason


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ("not json", "not_json", "body is not JSON"),
        ("", "not_json", "body is not JSON"),
        ('{"a": "\udcff"}', "not_utf8", "not valid UTF-8"),
        ('{"a": "\\udcff"}', "not_utf8", "unpaired surrogate"),
        ('{"\\ud800": 1}', "not_utf8", "unpaired surrogate"),
        ('{"event": 5}', "bad_envelope", "'event' must be a non-empty string"),
        ('{"event": ""}', "bad_envelope", "'event' must be a non-empty string"),
        ('{"event": "connect"}', "bad_envelope", "reserved"),
        ('{"event": "relay:recovery"}', "bad_envelope", "reserved"),
        ('{"event": "e", "room": 3}', "bad_envelope", "a room must be a non-empty string"),
        ('{"event": "e", "room": ""}', "bad_envelope", "a room must be a non-empty string"),
        ('{"event": "e", "room": "relay:all"}', "bad_envelope", "not starting with 'relay:'"),
        ('{"event": "e", "namespace": "admin"}', "bad_envelope", "starting with '/'"),
        ("[" * 100_000 + "]" * 100_000, "too_deep", "nested too deeply"),
        ("[" * 101 + "]" * 101, "too_deep", "more than 100 levels"),
        (sns(None), "bad_sns", "without a string 'Message'"),
        (sns("not json"), "not_json", "SNS Message is not JSON"),
        ('{"event": "e", "data": NaN}', "not_finite", "body has NaN"),
        ('{"event": "e", "data": [Infinity]}', "not_finite", "body has Infinity"),
        ('{"event": "e", "data": {"x": -Infinity}}', "not_finite", "body has -Infinity"),
        ('{"event": "e", "data": 1e999}', "not_finite", "too large for a double"),
        ("-1.5e400", "not_finite", "too large for a double"),
        (sns('{"event": "e", "data": NaN}'), "not_finite", "SNS Message has NaN"),
        ('{"event": "e", "data": ' + "1" * 4301 + "}", "bad_number", "more than 4300 digits"),
        ("-" + "9" * 4301, "bad_number", "more than 4300 digits"),
    ],
)
def test_a_body_that_can_never_be_delivered_says_why(body: str, code: str, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse(body, max_bytes=10**6)
    assert caught.value.code == code
    assert reason in caught.value.reason


def test_an_escaped_surrogate_pair_is_fine() -> None:
    assert parse('"\\ud83d\\ude00"').data == "\U0001f600"


def test_depth_100_is_fine() -> None:
    assert parse("[" * 100 + "]" * 100).event == "message"


def test_the_longest_integer_python_decodes_is_fine() -> None:
    assert parse("-" + "9" * 4300, max_bytes=10**6).data == -int("9" * 4300)


@pytest.mark.parametrize("deep", ["[" * 100_000 + "]" * 100_000, "[" * 101 + '"r"' + "]" * 101])
def test_a_deep_string_array_room_attribute_is_refused_not_raised(deep: str) -> None:
    # main raised RecursionError here, which the worker did not catch: the batch was stranded
    for attributes in ({"room": {"DataType": "String.Array", "StringValue": deep}},):
        with pytest.raises(DecodeError) as caught:
            parse_body("1", default_event="m", attributes=sqs_attributes(attributes))
        assert caught.value.code == "too_deep"
    wrapper = json.dumps(
        {
            "Type": "Notification",
            "TopicArn": "arn",
            "Message": "1",
            "MessageAttributes": {"room": {"Type": "String.Array", "Value": deep}},
        }
    )
    with pytest.raises(DecodeError) as caught:
        parse(wrapper, max_bytes=10**6)
    assert caught.value.code == "too_deep"


def test_a_message_for_more_rooms_than_allowed_is_refused() -> None:
    body = json.dumps({"event": "e", "room": [f"r{n}" for n in range(11)]})
    assert len(parse_body(body, default_event="m", max_rooms=11).rooms) == 11
    with pytest.raises(DecodeError) as caught:
        parse_body(body, default_event="m", max_rooms=10)
    assert caught.value.code == "too_many_rooms"
    assert "11 rooms, over MAX_MESSAGE_ROOMS=10" in caught.value.reason


# --- Envelope.to_body: the one envelope encoder, for every producer ---------------------------

json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.text(min_size=1, max_size=12).filter(
    lambda name: name not in RESERVED_EVENTS and not name.startswith(RESERVED_PREFIX)
)
users = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=MAX_USER_LENGTH
)
envelopes = st.builds(
    Envelope,
    event=names,
    data=json_data,
    room=st.none() | names | st.lists(names, min_size=1, max_size=3).map(tuple),
    namespace=st.text(max_size=8).map(lambda rest: "/" + rest),
    user=st.none() | users | st.lists(users, min_size=1, max_size=3).map(tuple),
)


@given(envelopes)
def test_what_to_body_writes_parse_body_reads_back_as_the_same_envelope(
    envelope: Envelope,
) -> None:
    assert parse_body(envelope.to_body(), default_event="message") == envelope


def test_to_body_leaves_out_the_defaults_and_writes_rooms_as_a_list() -> None:
    assert Envelope("ping", None).to_body() == '{"event":"ping","data":null}'
    assert json.loads(Envelope("e", 1, room=["a", "b"], namespace="/x").to_body()) == {
        "event": "e",
        "data": 1,
        "room": ["a", "b"],
        "namespace": "/x",
    }


def test_a_room_named_twice_is_one_target() -> None:
    # Else its clients got the message twice, under two offsets of one stream
    envelope = Envelope("e", 1, room=["b", "a", "b", "a"])
    assert envelope.rooms == ("b", "a")
    assert parse_body('{"event":"e","data":1,"room":["x","x"]}', default_event="m").rooms == ("x",)


def test_to_body_writes_ascii_so_that_sqs_takes_every_character() -> None:
    # SQS refuses U+FFFF written as it is; its escape is plain ASCII
    body = Envelope("e", "\uffff é").to_body()
    assert body.isascii()
    assert parse_body(body, default_event="m").data == "\uffff é"


def deep(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (math.nan, "not_finite"),
        ({"price": math.inf}, "not_finite"),
        ([-math.inf], "not_finite"),
        (deep(MAX_DEPTH), "too_deep"),  # the envelope object itself is one more level
        (deep(5000), "too_deep"),  # deeper than json.dumps can recurse
        ("\ud800", "not_utf8"),
        ({1, 2}, "not_json"),
        ("x" * SQS_MAX_BYTES, "too_large"),
    ],
)
def test_to_body_refuses_what_the_worker_would_dead_letter_with_its_code(
    data: object, code: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        Envelope("e", data).to_body()
    assert caught.value.code == code
    assert caught.value.reason


def test_to_body_takes_the_deepest_data_the_worker_takes() -> None:
    body = Envelope("e", deep(MAX_DEPTH - 1)).to_body()
    assert parse_body(body, default_event="m").data == deep(MAX_DEPTH - 1)


# --- the user target ---------------------------------------------------------------------------


def test_an_envelope_for_users_targets_each_users_stream_after_its_rooms() -> None:
    # Given rooms and users, users named twice, and users alone
    both = parse('{"event": "e", "room": ["a", "b"], "user": ["bob", "alice", "bob"]}')
    alone = parse('{"event": "e", "user": "alice"}')
    # Then the targets are the rooms, then each user's stream once; users alone are no
    # broadcast
    assert both.rooms == ("a", "b", "relay:user:bob", "relay:user:alice")
    assert both.users == ("bob", "alice") and both.user == ("bob", "alice")
    assert alone.rooms == ("relay:user:alice",) and alone.users == ("alice",)
    assert parse('{"event": "e"}').rooms == (None,) and parse('{"event": "e"}').users == ()


def test_a_user_id_of_the_longest_length_passes_and_one_more_character_does_not() -> None:
    longest = "u" * MAX_USER_LENGTH
    assert len(parse(json.dumps({"event": "e", "user": longest})).rooms[0] or "") == 200
    with pytest.raises(DecodeError) as caught:
        parse(json.dumps({"event": "e", "user": longest + "u"}))
    assert caught.value.code == "bad_envelope"
    assert f"at most {MAX_USER_LENGTH} characters, got {MAX_USER_LENGTH + 1}" in caught.value.reason


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ("", "a user must be a non-empty string"),
        (7, "a user must be a non-empty string"),
        ([], "a user list must have 1 to 10000 users, got 0"),
        (["ok", 3], "a user must be a non-empty string, got 3"),
        ("line\nbreak", "must not hold control characters"),
        ("del\x7f", "must not hold control characters"),
        ("c1\u0085", "must not hold control characters"),
    ],
)
def test_a_bad_user_is_refused_with_the_reason(user: object, reason: str) -> None:
    body = json.dumps({"event": "e", "user": user})
    with pytest.raises(DecodeError) as caught:
        parse(body)
    assert caught.value.code == "bad_envelope"
    assert reason in caught.value.reason


def test_rooms_and_users_count_together_toward_the_room_limit() -> None:
    body = json.dumps({"event": "e", "room": ["a", "b"], "user": ["x", "y", "z"]})
    assert len(parse_body(body, default_event="m", max_rooms=5).rooms) == 5
    with pytest.raises(DecodeError) as caught:
        parse_body(body, default_event="m", max_rooms=4)
    assert caught.value.code == "too_many_rooms"
    assert "5 targets (2 rooms, 3 users), over MAX_MESSAGE_ROOMS=4" in caught.value.reason


def test_a_user_attribute_routes_a_raw_body_as_a_string_or_a_string_array() -> None:
    def routed(kind: str, value: str) -> Envelope:
        attributes = sqs_attributes({"user": {"DataType": kind, "StringValue": value}})
        return parse_body('{"order": 7}', default_event="m", attributes=attributes)

    assert routed("String", "alice") == Envelope("m", {"order": 7}, user="alice")
    assert routed("String.Array", '["alice", "bob"]').rooms == (
        "relay:user:alice",
        "relay:user:bob",
    )
    with pytest.raises(DecodeError) as caught:
        routed("String.Array", "[alice")
    assert caught.value.code == "bad_attributes"
    assert "user attribute of type String.Array is not JSON" in caught.value.reason


def test_a_user_attribute_must_agree_with_the_envelopes_user() -> None:
    body = '{"event": "e", "user": ["alice", "bob"]}'

    def parsed(value: str) -> Envelope:
        attributes = sqs_attributes({"user": {"DataType": "String.Array", "StringValue": value}})
        return parse_body(body, default_event="m", attributes=attributes)

    assert parsed('["alice", "bob", "alice"]').users == ("alice", "bob")
    with pytest.raises(DecodeError) as caught:
        parsed('["alice"]')
    assert caught.value.code == "routing_conflict"
    assert "message attribute user=" in caught.value.reason


def test_to_body_writes_users_and_parse_body_reads_them_back() -> None:
    envelope = Envelope("e", 1, room="a", user=("alice", "bob"))
    assert json.loads(envelope.to_body()) == {
        "event": "e", "data": 1, "room": "a", "user": ["alice", "bob"]
    }  # fmt: skip
    assert parse_body(envelope.to_body(), default_event="m") == envelope
