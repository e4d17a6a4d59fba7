"""Guarantee 3: bodies that can never be delivered end in the DLQ with their reason; the
worker keeps going and the good messages around them all arrive."""

from __future__ import annotations

import json
from collections import Counter

from tests.clients import RecordingClient
from tests.integration.helpers import queue_depth, send, wait_queue_empty_async
from tests.processes import Processes, Stack

SNS = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t"}

#: (what it is, body, the reason code the DLQ copy must carry)
CORPUS = [
    ("not JSON", "this is not json", "not_json"),
    ("truncated JSON", '{"event": "order", "data": ', "not_json"),
    ("invalid UTF-8 (escaped lone surrogate)", '{"event": "e", "data": "\\udcff"}', "not_utf8"),
    ("wrong shape: event is a number", '{"event": 42, "data": 1}', "bad_envelope"),
    ("wrong type: room is a list of numbers", '{"event": "e", "room": [1]}', "bad_envelope"),
    ("wrong type: namespace without /", '{"event": "e", "namespace": "chat"}', "bad_envelope"),
    ("reserved event name", '{"event": "disconnect"}', "bad_envelope"),
    ("nested 10^5 levels", "[" * 100_000 + "]" * 100_000, "too_deep"),
    ("over MAX_MESSAGE_BYTES", json.dumps({"event": "e", "data": "x" * 300_000}), "too_large"),
    ("SNS wrapper without Message", json.dumps(SNS), "bad_sns"),
    ("SNS wrapper with a non-JSON Message", json.dumps(SNS | {"Message": "{oops"}), "not_json"),
]


async def test_poison_messages_go_to_the_dead_letter_queue_with_reasons(
    processes: Processes, stack: Stack
) -> None:
    # Given the relay and a client
    processes.sqs(stack)
    processes.server(stack)
    worker = processes.worker(stack)
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    dlq_url = sqs.get_queue_url(QueueName=f"{stack.queue_name}-dlq")["QueueUrl"]

    # When each bad body is sent between two good ones
    bad_ids: dict[str, str] = {}
    good_ids: list[str] = []
    for n, (what, body, _code) in enumerate(CORPUS):
        good_ids += send(sqs, stack.queue_url, [{"event": "good", "data": 2 * n}])
        [bad_ids[what]] = send(sqs, stack.queue_url, [body], raw=True)
    good_ids += send(sqs, stack.queue_url, [{"event": "good", "data": "last"}])

    # Then every good message arrives, and the queue ends empty
    await client.wait_for(len(good_ids))
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    assert sorted(client.ids()) == sorted(good_ids)

    # And every bad one is in the dead-letter queue once, with its reason attached
    assert queue_depth(sqs, dlq_url) == len(CORPUS)
    dead: dict[str, dict[str, str]] = {}
    while len(dead) < len(CORPUS):
        response = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
            dead[attributes["relay_source_message_id"]] = attributes
    for what, _body, code in CORPUS:
        attributes = dead[bad_ids[what]]
        assert attributes["relay_error_code"] == code, what
        assert attributes["relay_error_reason"], what

    # And the worker logged each once, with its reason, and counts them by reason
    log = worker.log()
    for what, message_id in bad_ids.items():
        assert log.count(f"Dead-lettered message {message_id}") == 1, what
    worker.stop()
    expected = Counter(code for _what, _body, code in CORPUS)
    [summary] = [line for line in worker.log().splitlines() if "Stopped worker:" in line]
    for code, count in expected.items():
        assert f"dead_lettered[{code}]={count}" in summary, summary
    await client.close()
