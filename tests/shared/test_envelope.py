from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import (
    MAX_DEPTH,
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
envelopes = st.builds(
    Envelope,
    event=names,
    data=json_data,
    room=st.none() | names | st.lists(names, min_size=1, max_size=3).map(tuple),
    namespace=st.text(max_size=8).map(lambda rest: "/" + rest),
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
