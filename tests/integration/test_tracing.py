"""Traces of one event's path across the three processes (issue 32, part 1), on real
processes: moto's SQS, the server, a worker and the producer command, each exporting over
OTLP/HTTP to a receiver in the test (tests/otlp.py).

Run with -s for the spans of each trace (the issue notes quote them).
"""

from __future__ import annotations

import asyncio
import uuid

from tests.clients import RecordingClient
from tests.integration.helpers import report, run_producer
from tests.otlp import OtlpReceiver, Span
from tests.processes import Processes, Stack, free_port

SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5
STATUS_ERROR = 2


def traced_relay(processes: Processes, stack: Stack, otlp: OtlpReceiver, **server: str) -> None:
    """The emulator, a server and a worker, both exporting their spans to `otlp`."""
    processes.sqs(stack)
    processes.server(stack, **server, **otlp.env())
    processes.worker(stack, **otlp.env())


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def show(title: str, spans: list[Span]) -> None:
    first = min(s.start_ns for s in spans)
    report(
        title,
        spans=[
            f"{s.service}:{s.name} "
            f"+{(s.start_ns - first) / 1e6:.2f}..{(s.end_ns - first) / 1e6:.2f} ms"
            for s in sorted(spans, key=lambda s: (s.start_ns, s.end_ns))
        ],
    )


async def test_one_published_event_is_one_trace_across_producer_worker_and_server(
    processes: Processes, stack: Stack
) -> None:
    with OtlpReceiver() as otlp:
        # Given the relay with traces on, exporting to the receiver, and a client in a room
        traced_relay(processes, stack, otlp)
        client = await RecordingClient().connect(stack.base_url)
        await client.call("join", "shop")

        # When one event is published by the producer command, traces on
        sent = await asyncio.to_thread(
            run_producer, stack, "--event", "order", "--room", "shop", **otlp.env()
        )
        assert sent.returncode == 0, sent.stderr
        [trace_id] = [
            line.split()[1] for line in sent.stdout.splitlines() if line.startswith("trace ")
        ]
        await client.wait_for(1)

        # Then one trace holds every step, from the three processes
        names = {"sqs-relay-publish", "publish", "receive", "decode", "hand-off", "emit", "delete"}
        spans = await asyncio.to_thread(otlp.wait_trace, trace_id, names)
        show("one event's trace", spans)
        publish, receive = one(spans, "publish"), one(spans, "receive")
        decode, hand_off = one(spans, "decode"), one(spans, "hand-off")
        emit, delete = one(spans, "emit"), one(spans, "delete")
        assert {s.service for s in spans} == {
            "sqs-relay-publish",
            "sqs-relay-worker",
            "sqs-relay-server",
        }
        assert (publish.service, receive.service, emit.service) == (
            "sqs-relay-publish",
            "sqs-relay-worker",
            "sqs-relay-server",
        )

        # And each continues the one before: publish -> receive -> hand-off -> emit, and the
        # worker's steps are children of its receive
        assert receive.parent_id == publish.span_id
        assert decode.parent_id == receive.span_id
        assert hand_off.parent_id == receive.span_id
        assert emit.parent_id == hand_off.span_id
        assert delete.parent_id == receive.span_id
        assert (publish.kind, receive.kind, hand_off.kind, emit.kind) == (
            SPAN_KIND_PRODUCER,
            SPAN_KIND_CONSUMER,
            SPAN_KIND_PRODUCER,
            SPAN_KIND_CONSUMER,
        )

        # And in order in time (one machine, one clock)
        assert publish.start_ns <= receive.start_ns <= decode.start_ns <= decode.end_ns
        assert decode.end_ns <= hand_off.start_ns <= emit.start_ns <= emit.end_ns
        assert emit.end_ns <= hand_off.end_ns <= delete.start_ns <= delete.end_ns
        assert delete.end_ns <= receive.end_ns

        # And they say what happened: the MessageId, the room, the outcome, the recipients
        message_id = receive.attributes["messaging.message.id"]
        assert message_id == emit.attributes["messaging.message.id"]
        assert receive.attributes["sqs_relay.rooms"] == ["shop"]
        assert receive.attributes["sqs_relay.outcome"] == "delivered"
        assert hand_off.attributes["sqs_relay.confirmed"] is True
        assert emit.attributes["sqs_relay.outcome"] == "emitted"
        assert emit.attributes["sqs_relay.recipients"] == 1
        assert client.ids() == [message_id]
        await client.close()


async def test_a_poison_messages_trace_ends_in_the_dead_letter_span(
    processes: Processes, stack: Stack
) -> None:
    with OtlpReceiver() as otlp:
        # Given the relay with traces on (the emulator's queue has a dead-letter queue)
        traced_relay(processes, stack, otlp)
        sqs = stack.sqs_client()

        # When a body that is not JSON arrives with a caller's trace context
        trace_id = uuid.uuid4().hex
        parent = uuid.uuid4().hex[:16]
        attributes = {
            "traceparent": {"DataType": "String", "StringValue": f"00-{trace_id}-{parent}-01"}
        }
        message_id = sqs.send_message(
            QueueUrl=stack.queue_url, MessageBody="not json {", MessageAttributes=attributes
        )["MessageId"]

        # Then the worker's spans join that trace, and it ends in the dead-letter span, an
        # error with the reason, with no hand-off and no emit
        spans = await asyncio.to_thread(otlp.wait_trace, trace_id, {"receive", "dead-letter"})
        show("a poison message's trace", spans)
        receive, dead = one(spans, "receive"), one(spans, "dead-letter")
        assert receive.parent_id == parent
        assert receive.attributes["messaging.message.id"] == message_id
        assert receive.attributes["sqs_relay.outcome"] == "dead_lettered"
        assert dead.parent_id == receive.span_id
        assert dead.status == STATUS_ERROR
        assert dead.attributes["sqs_relay.dead_letter.reason"] == "not_json"
        steps = sorted((s for s in spans if s is not receive), key=lambda s: s.end_ns)
        assert steps[-1] is dead, [s.name for s in steps]
        assert not {"hand-off", "emit", "delete"} & {s.name for s in spans}


async def test_in_cluster_mode_the_servers_span_is_the_append_to_redis(
    processes: Processes, stack: Stack
) -> None:
    with OtlpReceiver() as otlp:
        # Given a server in cluster mode (Redis) and a worker, traces on
        redis_port = free_port()
        processes.redis(redis_port)
        traced_relay(processes, stack, otlp, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
        client = await RecordingClient().connect(stack.base_url)
        sqs = stack.sqs_client()

        # When an event arrives with a caller's trace context
        trace_id = uuid.uuid4().hex
        attributes = {
            "traceparent": {
                "DataType": "String",
                "StringValue": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",
            }
        }
        message_id = sqs.send_message(
            QueueUrl=stack.queue_url,
            MessageBody='{"event": "tick", "data": 1}',
            MessageAttributes=attributes,
        )["MessageId"]
        await client.wait_for(1)

        # Then the server's span is the append into the shared history, under the hand-off
        spans = await asyncio.to_thread(otlp.wait_trace, trace_id, {"hand-off", "append"})
        show("cluster mode's trace", spans)
        hand_off, append = one(spans, "hand-off"), one(spans, "append")
        assert append.service == "sqs-relay-server"
        assert append.parent_id == hand_off.span_id
        assert append.attributes["sqs_relay.outcome"] == "appended"
        assert append.attributes["messaging.message.id"] == message_id
        assert client.ids() == [message_id]
        await client.close()
