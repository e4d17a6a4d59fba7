"""Routing from the message, each path through the real SQS emulator (issue: routing)."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import queue_depth, send, wait_queue_empty_async
from tests.processes import Processes, Stack

SNS_BASE = {
    "Type": "Notification",
    "MessageId": "sns-message-id",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:events",
}


def attr(value: str, kind: str = "String") -> dict[str, str]:
    return {"DataType": kind, "StringValue": value}


async def relay(processes: Processes, stack: Stack) -> Any:
    processes.relay(stack)
    return stack.sqs_client()


async def joined(stack: Stack, *rooms: str, namespace: str = "/") -> RecordingClient:
    client = await RecordingClient().connect(stack.base_url, namespaces=[namespace])
    for room in rooms:
        assert (await client.sio.call("join", room, namespace=namespace))["ok"]
    return client


async def barrier(*clients: RecordingClient) -> None:
    for client in clients:
        for namespace in client.sio.namespaces:
            await client.sio.call("join", "barrier", namespace=namespace)


async def test_every_routing_path(processes: Processes, stack: Stack) -> None:
    sqs = await relay(processes, stack)
    in_a, in_b, nowhere = await joined(stack, "a"), await joined(stack, "b"), await joined(stack)
    admin = await joined(stack, namespace="/admin")

    # an envelope for a list of rooms; a raw body routed by attributes; an SNS notification
    # (raw delivery off) with its routing in SNS attributes; an SNS raw delivery (just a
    # body); an attribute room list; a namespace from an attribute
    send(sqs, stack.queue_url, [{"event": "env", "data": 1, "room": ["a", "b"]}])
    sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody='{"plain": 2}',
        MessageAttributes={"event": attr("attr"), "room": attr("a")},
    )
    sns = SNS_BASE | {
        "Message": '{"from": "sns"}',
        "MessageAttributes": {
            "event": {"Type": "String", "Value": "sns"},
            "room": {"Type": "String", "Value": "b"},
        },
    }
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(sns))
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"raw": "sns"}')
    sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody="3",
        MessageAttributes={"event": attr("both"), "room": attr('["a", "b"]', "String.Array")},
    )
    sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody='"for admins"',
        MessageAttributes={"event": attr("ns"), "namespace": attr("/admin")},
    )
    await stack.wait_counter("emitted", 6)
    await barrier(in_a, in_b, nowhere, admin)

    def got(client: RecordingClient) -> list[tuple[str, Any, Any]]:
        return sorted((e, p["room"], json.dumps(p["data"])) for e, p in client.events)

    assert got(in_a) == [
        ("attr", "a", '{"plain": 2}'),
        ("both", "a", "3"),
        ("env", "a", "1"),
        ("message", None, '{"raw": "sns"}'),
    ]
    assert got(in_b) == [
        ("both", "b", "3"),
        ("env", "b", "1"),
        ("message", None, '{"raw": "sns"}'),
        ("sns", "b", '{"from": "sns"}'),
    ]
    assert got(nowhere) == [("message", None, '{"raw": "sns"}')]
    assert got(admin) == [("ns", None, '"for admins"')]
    await wait_queue_empty_async(sqs, stack.queue_url)
    for client in (in_a, in_b, nowhere, admin):
        await client.close()


async def test_attributes_that_disagree_with_the_envelope_are_dead_lettered(
    processes: Processes, stack: Stack
) -> None:
    sqs = await relay(processes, stack)
    client = await joined(stack, "a")
    dlq_url = sqs.get_queue_url(QueueName=f"{stack.queue_name}-dlq")["QueueUrl"]
    body = json.dumps({"event": "e", "data": 1, "room": "a"})
    # agreeing attributes are fine; a disagreeing one is refused rather than guessed
    sqs.send_message(
        QueueUrl=stack.queue_url, MessageBody=body, MessageAttributes={"room": attr("a")}
    )
    sqs.send_message(
        QueueUrl=stack.queue_url, MessageBody=body, MessageAttributes={"room": attr("b")}
    )
    await client.wait_for(1)
    await wait_queue_empty_async(sqs, stack.queue_url)
    assert queue_depth(sqs, dlq_url) == 1
    [dead] = sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert dead["MessageAttributes"]["relay_error_code"]["StringValue"] == "routing_conflict"
    assert "disagrees" in dead["MessageAttributes"]["relay_error_reason"]["StringValue"]
    await client.close()


async def test_leak_probe_each_client_gets_exactly_its_rooms(
    processes: Processes, stack: Stack
) -> None:
    # Given 16 clients, each in a random set of rooms out of 6
    rng = random.Random(20261125)
    rooms = [f"room{n}" for n in range(6)]
    sqs = await relay(processes, stack)
    memberships = [set(rng.sample(rooms, rng.randint(0, 3))) for _ in range(16)]
    clients = [await joined(stack, *sorted(m)) for m in memberships]

    # When 120 messages go to a random room, a random pair of rooms, or everyone
    expected: list[Counter[str]] = [Counter() for _ in clients]
    bodies = []
    for n in range(120):
        kind = rng.random()
        target: Any = (
            None if kind < 0.15 else rng.sample(rooms, 2) if kind < 0.4 else rng.choice(rooms)
        )
        bodies.append({"event": "probe", "data": n, "room": target})
        targets = {None} if target is None else set([target] if isinstance(target, str) else target)
        for i, membership in enumerate(memberships):
            # one event per target room the client is in (each room is its own stream)
            hits = 1 if target is None else len(targets & membership)
            expected[i][str(n)] += hits
    send(sqs, stack.queue_url, bodies)
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=90)
    await barrier(*clients)

    # Then each client received exactly the messages of its rooms, nothing else
    for i, client in enumerate(clients):
        got = Counter(str(p["data"]) for e, p in client.events if e == "probe")
        assert got == +expected[i], f"client {i} in {sorted(memberships[i])}"
        assert all(p["room"] is None or p["room"] in memberships[i] for _e, p in client.events)
    for client in clients:
        await client.close()
