"""`POST /demo/send`: the page's test event goes through the producer API, or answers 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from server.web.app import DemoSender
from shared.envelope import Envelope, parse_body
from shared.settings import load_settings


class FakeSQS:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        self.bodies.append(MessageBody)
        return {"MessageId": "m1"}


def post(body: bytes) -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


async def answer(sender: DemoSender, body: bytes) -> tuple[int, Any]:
    response = await sender.send(post(body))
    return response.status_code, json.loads(bytes(response.body))


async def test_the_demo_event_is_sent_as_an_envelope_and_its_message_id_returned() -> None:
    sqs = FakeSQS()
    sender = DemoSender(load_settings({}, env_file=None), sqs=sqs)

    status, reply = await answer(sender, b'{"event": "item_added", "data": {"id": 1}, "room": ""}')

    assert (status, reply) == (200, {"MessageId": "m1"})
    [body] = sqs.bodies
    assert parse_body(body, default_event="message") == Envelope("item_added", {"id": 1})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{oops", "body must be a JSON object"),
        (b"[1]", "body must be a JSON object"),
        (b'{"data": NaN}', "envelope has NaN, which is not JSON (browsers refuse it)"),
        (b'{"event": "connect"}', "a name reserved by Socket.IO or the relay"),
        (b'{"room": "relay:all"}', "a room must be a non-empty string"),
    ],
)
async def test_a_bad_demo_event_answers_400_with_the_reason_and_sends_nothing(
    body: bytes, error: str
) -> None:
    sqs = FakeSQS()
    sender = DemoSender(load_settings({}, env_file=None), sqs=sqs)

    status, reply = await answer(sender, body)

    assert status == 400
    assert error in reply["error"]
    assert sqs.bodies == []
