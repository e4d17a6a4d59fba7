"""The embedded emulator serves a FIFO SQS_QUEUE_URL: both queues FIFO, the redrive to a FIFO
dead-letter queue, and a message sent with its group comes back with it."""

from __future__ import annotations

import json
import uuid

import pytest

from producer import publish
from tests.processes import Processes, Stack

pytestmark = pytest.mark.timeout(60)


def test_a_fifo_queue_url_gets_a_fifo_queue_and_a_fifo_dead_letter_queue(
    processes: Processes,
) -> None:
    # Given the emulator started for a queue whose name ends .fifo
    stack = Stack(queue_name=f"test-{uuid.uuid4().hex[:8]}.fifo")
    processes.sqs(stack)
    sqs = stack.sqs_client()

    # When its attributes are read and an event is published with a group
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])
    publish(sqs, stack.queue_url, "status", 1, group="order-7", dedup_id="7-1")
    received = sqs.receive_message(
        QueueUrl=stack.queue_url, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]

    # Then it is FIFO, redriven to <stem>-dlq.fifo, also FIFO, and the group came back
    values = attributes["Attributes"]
    assert values["FifoQueue"] == "true"
    target = json.loads(values["RedrivePolicy"])["deadLetterTargetArn"]
    assert target.endswith(stack.queue_name.removesuffix(".fifo") + "-dlq.fifo")
    dlq_url = stack.queue_url.rsplit("/", 1)[0] + "/" + target.rsplit(":", 1)[1]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["FifoQueue"])
    assert dlq["Attributes"]["FifoQueue"] == "true"
    assert received[0]["Attributes"]["MessageGroupId"] == "order-7"
