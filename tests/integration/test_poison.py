"""Guarantee 3: bodies that can never be delivered end in the DLQ with their reason; the
worker keeps going and the good messages around them all arrive, also when a bad one shares
its receive batch with nine good ones."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import queue_depth, send, wait_queue_empty_async
from tests.processes import Processes, Stack

SNS = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t"}
DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
SNS_DEEP_ROOM = json.dumps(
    SNS
    | {
        "Message": '{"x": 1}',
        "MessageAttributes": {"room": {"Type": "String.Array", "Value": DEEP_ARRAY}},
    }
)

#: (what it is, body, the reason code the DLQ copy must carry)
CORPUS = [
    ("not JSON", "this is not json", "not_json"),
    ("truncated JSON", '{"event": "order", "data": ', "not_json"),
    ("invalid UTF-8 (escaped lone surrogate)", '{"event": "e", "data": "\\udcff"}', "not_utf8"),
    ("wrong shape: event is a number", '{"event": 42, "data": 1}', "bad_envelope"),
    ("wrong type: room is a list of numbers", '{"event": "e", "room": [1]}', "bad_envelope"),
    ("wrong type: namespace without /", '{"event": "e", "namespace": "chat"}', "bad_envelope"),
    ("reserved event name", '{"event": "disconnect"}', "bad_envelope"),
    ("nested 10^5 levels", DEEP_ARRAY, "too_deep"),
    ("over MAX_MESSAGE_BYTES", json.dumps({"event": "e", "data": "x" * 300_000}), "too_large"),
    ("SNS wrapper without Message", json.dumps(SNS), "bad_sns"),
    ("SNS wrapper with a non-JSON Message", json.dumps(SNS | {"Message": "{oops"}), "not_json"),
    (
        "more rooms than MAX_MESSAGE_ROOMS (100)",
        json.dumps({"event": "e", "room": [f"r{n}" for n in range(101)]}),
        "too_many_rooms",
    ),
    # Bodies that once raised something other than DecodeError (ValueError, RecursionError)
    # and so stranded their whole batch
    ("a 4,301-digit integer", '{"event":"e","data":' + "1" * 4301 + "}", "bad_number"),
    ("SQS attribute room: String.Array nested 10^5 deep", '{"x": 1}', "too_deep"),
    ("SNS MessageAttributes.room: String.Array nested 10^5 deep", SNS_DEEP_ROOM, "too_deep"),
    ("NaN", '{"event":"e","data":NaN}', "not_finite"),
    ("Infinity", '{"event":"e","data":Infinity}', "not_finite"),
    ("-Infinity", '{"event":"e","data":-Infinity}', "not_finite"),
    ("1e999 (overflows a double)", '{"event":"e","data":1e999}', "not_finite"),
]
#: SQS message attributes sent with a corpus body, by what it is.
ATTRIBUTES = {
    "SQS attribute room: String.Array nested 10^5 deep": {
        "room": {"DataType": "String.Array", "StringValue": DEEP_ARRAY}
    }
}


def send_one(sqs: Any, queue_url: str, body: str, attributes: dict[str, Any] | None) -> str:
    extra = {"MessageAttributes": attributes} if attributes else {}
    return str(sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)["MessageId"])


def send_batch_of_ten(
    sqs: Any, queue_url: str, good: list[Any], bad: tuple[str, dict[str, Any] | None]
) -> tuple[list[str], str]:
    """One SendMessageBatch: nine good bodies with the bad one in the middle. Returns
    (good MessageIds, the bad one's)."""
    body, attributes = bad
    entries: list[dict[str, Any]] = [
        {"Id": f"g{n}", "MessageBody": json.dumps(g)} for n, g in enumerate(good)
    ]
    entries.insert(
        len(entries) // 2,
        {"Id": "bad", "MessageBody": body}
        | ({"MessageAttributes": attributes} if attributes else {}),
    )
    response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    assert not response.get("Failed"), response["Failed"]
    ids = {e["Id"]: e["MessageId"] for e in response["Successful"]}
    return [ids[f"g{n}"] for n in range(len(good))], ids["bad"]


def dead_letters(sqs: Any, dlq_url: str, count: int) -> dict[str, dict[str, str]]:
    """The relay_* attributes of `count` DLQ messages, by their source MessageId."""
    dead: dict[str, dict[str, str]] = {}
    while len(dead) < count:
        response = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            attributes = {
                k: v["StringValue"]
                for k, v in message["MessageAttributes"].items()
                if k.startswith("relay_")
            }
            dead[attributes["relay_source_message_id"]] = attributes
    return dead


def dead_lettered_summary(log: str) -> str:
    [summary] = [line for line in log.splitlines() if "Stopped worker:" in line]
    return summary


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
        bad_ids[what] = send_one(sqs, stack.queue_url, body, ATTRIBUTES.get(what))
    good_ids += send(sqs, stack.queue_url, [{"event": "good", "data": "last"}])

    # Then every good message arrives, and the queue ends empty
    await client.wait_for(len(good_ids))
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    assert sorted(client.ids()) == sorted(good_ids)

    # And every bad one is in the dead-letter queue once, with its reason attached
    assert queue_depth(sqs, dlq_url) == len(CORPUS)
    dead = dead_letters(sqs, dlq_url, len(CORPUS))
    print(
        "\n[poison] " + ", ".join(f"{w}: {dead[i]['relay_error_code']}" for w, i in bad_ids.items())
    )
    for what, _body, code in CORPUS:
        attributes = dead[bad_ids[what]]
        assert attributes["relay_error_code"] == code, what
        assert attributes["relay_error_reason"], what

    # And the worker logged each once, with its reason, and counts them by reason
    log = worker.log()
    for what, message_id in bad_ids.items():
        assert log.count(f"Dead-lettered message {message_id}") == 1, what
    worker.stop()
    summary = dead_lettered_summary(worker.log())
    for code, count in Counter(code for _what, _body, code in CORPUS).items():
        assert f"dead_lettered[{code}]={count}" in summary, summary
    await client.close()


async def test_one_bad_message_among_nine_good_in_one_batch_holds_up_none_of_them(
    processes: Processes, stack: Stack
) -> None:
    # Given the relay and a client
    processes.sqs(stack)
    processes.server(stack)
    worker = processes.worker(stack)
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    dlq_url = sqs.get_queue_url(QueueName=f"{stack.queue_name}-dlq")["QueueUrl"]

    # When, for each kind of bad body, one SendMessageBatch carries nine good ones and it (so
    # that they are received together, as one batch of ten)
    good_ids: list[str] = []
    bad_ids: dict[str, str] = {}
    for n, (what, body, _code) in enumerate(CORPUS):
        good = [{"event": "good", "data": [n, k]} for k in range(9)]
        ids, bad_ids[what] = send_batch_of_ten(
            sqs, stack.queue_url, good, (body, ATTRIBUTES.get(what))
        )
        good_ids += ids

    # Then every good one arrives once, and the queue ends empty
    await client.wait_for(len(good_ids), timeout_s=90)
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    assert sorted(client.ids()) == sorted(good_ids)

    # And every bad one is in the DLQ, once, with its code
    assert queue_depth(sqs, dlq_url) == len(CORPUS)
    dead = dead_letters(sqs, dlq_url, len(CORPUS))
    for what, _body, code in CORPUS:
        assert dead[bad_ids[what]]["relay_error_code"] == code, what
    worker.stop()
    summary = dead_lettered_summary(worker.log())
    assert f"dead_lettered[too_deep]={sum(c == 'too_deep' for _w, _b, c in CORPUS)}" in summary
    await client.close()
