"""The producer API against a fake SQS client: what it sends, what it returns, what it refuses."""

from __future__ import annotations

import math
from typing import Any

import pytest

from producer import PublishError, publish, publish_batch, send_bodies
from shared.envelope import DecodeError, Envelope, parse_body


class FakeSQS:
    """Records what boto3 would send; refuses the bodies in `refuse`, leaves out `forget`."""

    def __init__(self, refuse: frozenset[str] = frozenset(), forget: frozenset[str] = frozenset()):
        self.refuse = refuse
        self.forget = forget
        self.bodies: list[str] = []
        self.calls: list[int] = []  # entries per SendMessageBatch call

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        assert QueueUrl == "http://sqs/q"
        self.bodies.append(MessageBody)
        return {"MessageId": f"m{len(self.bodies)}"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        assert QueueUrl == "http://sqs/q"
        assert len(Entries) <= 10
        self.calls.append(len(Entries))
        answer: dict[str, Any] = {"Successful": [], "Failed": []}
        for entry in reversed(Entries):  # SQS answers in no promised order
            body = entry["MessageBody"]
            if body in self.refuse:
                answer["Failed"].append(
                    {"Id": entry["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
                )
            elif body not in self.forget:
                self.bodies.append(body)
                answer["Successful"].append({"Id": entry["Id"], "MessageId": f"id-{body}"})
        return answer


def test_publish_sends_one_envelope_the_worker_reads_back_and_returns_its_message_id() -> None:
    sqs = FakeSQS()

    message_id = publish(sqs, "http://sqs/q", "order", {"id": 7}, room=["a", "b"], namespace="/x")

    assert message_id == "m1"
    [body] = sqs.bodies
    assert parse_body(body, default_event="message") == Envelope(
        "order", {"id": 7}, ("a", "b"), "/x"
    )


def test_publish_to_users_sends_an_envelope_for_each_users_stream() -> None:
    sqs = FakeSQS()

    publish(sqs, "http://sqs/q", "dm", {"id": 7}, user=["alice", "bob"])
    publish(sqs, "http://sqs/q", "dm", 1, room="shop", user="alice")

    first, second = (parse_body(body, default_event="message") for body in sqs.bodies)
    assert first == Envelope("dm", {"id": 7}, user=("alice", "bob"))
    assert first.rooms == ("relay:user:alice", "relay:user:bob")
    assert second.rooms == ("shop", "relay:user:alice")
    with pytest.raises(DecodeError) as caught:
        publish(sqs, "http://sqs/q", "dm", 1, user="")
    assert caught.value.code == "bad_envelope" and len(sqs.bodies) == 2


@pytest.mark.parametrize(
    ("event", "data", "room", "code"),
    [
        ("e", math.nan, None, "not_finite"),
        ("connect", 1, None, "bad_envelope"),
        ("e", 1, "relay:all", "bad_envelope"),
        ("e", 1, {"a": 1}, "bad_envelope"),
    ],
)
def test_publish_refuses_what_the_worker_would_dead_letter_and_sends_nothing(
    event: str, data: Any, room: Any, code: str
) -> None:
    sqs = FakeSQS()
    with pytest.raises(DecodeError) as caught:
        publish(sqs, "http://sqs/q", event, data, room=room)
    assert caught.value.code == code
    assert sqs.bodies == []


def test_publish_batch_sends_ten_per_call_and_returns_the_ids_in_order() -> None:
    sqs = FakeSQS()
    envelopes = [Envelope("tick", n) for n in range(23)]

    ids = publish_batch(sqs, "http://sqs/q", envelopes)

    assert sqs.calls == [10, 10, 3]
    assert ids == [f"id-{envelope.to_body()}" for envelope in envelopes]


def test_publish_batch_with_one_bad_envelope_sends_none() -> None:
    sqs = FakeSQS()
    with pytest.raises(DecodeError):
        publish_batch(sqs, "http://sqs/q", [Envelope("e", 1), Envelope("e", math.inf)])
    assert sqs.calls == []


def test_send_bodies_tries_every_batch_then_names_each_refused_message() -> None:
    # Given an SQS that refuses body "3" and body "12", and leaves "15" out of its answer
    sqs = FakeSQS(refuse=frozenset({"3", "12"}), forget=frozenset({"15"}))
    bodies = [str(n) for n in range(20)]

    # When the 20 raw bodies are sent
    with pytest.raises(PublishError) as caught:
        send_bodies(sqs, "http://sqs/q", bodies)

    # Then both batches were sent, and the error has each message's id or None, and why
    assert sqs.calls == [10, 10]
    error = caught.value
    assert error.message_ids == [None if n in (3, 12, 15) else f"id-{n}" for n in range(20)]
    assert error.failures == {
        3: "InvalidMessageContents",
        12: "InvalidMessageContents",
        15: "missing from SQS's answer",
    }
    assert "SQS refused 3 of 20 message(s); message 3: InvalidMessageContents" in str(error)


def test_nothing_to_send_sends_nothing() -> None:
    sqs = FakeSQS()
    assert send_bodies(sqs, "http://sqs/q", []) == []
    assert sqs.calls == []
