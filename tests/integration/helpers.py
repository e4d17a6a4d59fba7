"""SQS helpers for integration tests (real boto3 calls against the emulator)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.processes import wait_until


def attributes(sqs: Any, queue_url: str) -> dict[str, int]:
    values = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(values["ApproximateNumberOfMessages"]),
        "invisible": int(values["ApproximateNumberOfMessagesNotVisible"]),
    }


def queue_depth(sqs: Any, queue_url: str) -> int:
    return sum(attributes(sqs, queue_url).values())


def send(sqs: Any, queue_url: str, bodies: list[Any], *, raw: bool = False) -> list[str]:
    """Send bodies (JSON-encoded unless `raw`) in batches of 10; return their MessageIds."""
    ids = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "MessageBody": b if raw else json.dumps(b)}
                for n, b in enumerate(chunk)
            ],
        )
        assert not response.get("Failed"), response["Failed"]
        ids += [e["MessageId"] for e in sorted(response["Successful"], key=lambda e: int(e["Id"]))]
    return ids


async def send_async(sqs: Any, queue_url: str, bodies: list[Any]) -> list[str]:
    """`send` in a thread, so that clients keep receiving while it runs."""
    return await asyncio.to_thread(send, sqs, queue_url, bodies)


def wait_queue_empty(sqs: Any, queue_url: str, timeout_s: float = 60) -> None:
    wait_until(lambda: queue_depth(sqs, queue_url) == 0, timeout_s=timeout_s, what="an empty queue")


async def wait_queue_empty_async(sqs: Any, queue_url: str, timeout_s: float = 60) -> None:
    await asyncio.to_thread(wait_queue_empty, sqs, queue_url, timeout_s)
