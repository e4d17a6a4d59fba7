"""The worker loop with simple fakes at its two boundaries (SQS and the hand-off)."""

from __future__ import annotations

import json
import threading
from typing import Any

from botocore.exceptions import EndpointConnectionError

from shared import counters as c
from shared.settings import load_settings
from shared.wire import Delivery
from worker.consumer import Worker


def message(n: int, body: Any = None) -> dict[str, Any]:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": body if isinstance(body, str) else json.dumps(body or {"event": "e", "data": n}),
        "Attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"},
    }


DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:events-dlq"
DLQ_URL = "http://127.0.0.1:9324/123456789012/events-dlq"


class FakeSqs:
    def __init__(
        self,
        batches: list[list[dict[str, Any]]],
        stop: threading.Event,
        *,
        down_first: int = 0,
        redrive: bool = True,
    ):
        self._batches = list(batches)
        self._stop = stop
        self._down = down_first
        self._redrive = redrive
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.dead: list[dict[str, Any]] = []
        self.receives = 0

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        if self._down:
            self._down -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        policy = json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5})
        return {"Attributes": {"RedrivePolicy": policy} if self._redrive else {}}

    def get_queue_url(self, QueueName: str, QueueOwnerAWSAccountId: str) -> dict[str, Any]:
        assert (QueueName, QueueOwnerAWSAccountId) == ("events-dlq", "123456789012")
        return {"QueueUrl": DLQ_URL}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["QueueUrl"] == DLQ_URL
        self.dead.append(kwargs)
        return {"MessageId": "dlq-1"}

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        assert kwargs["MaxNumberOfMessages"] == 10 and kwargs["WaitTimeSeconds"] == 20
        if not self._batches:
            self._stop.set()
            return {}
        return {"Messages": self._batches.pop(0)}

    def delete_message_batch(self, Entries: list[dict[str, str]], **_: Any) -> dict[str, Any]:
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def change_message_visibility_batch(
        self, Entries: list[dict[str, Any]], **_: Any
    ) -> dict[str, Any]:
        assert all(e["VisibilityTimeout"] == 0 for e in Entries)
        self.released += [e["ReceiptHandle"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


class FakeHandoff:
    """Confirms every delivery except the ids in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.batches: list[list[Delivery]] = []

    def wait_ready(self, stop: threading.Event) -> bool:
        return not stop.is_set()

    def deliver(self, deliveries: list[Delivery], stop: threading.Event) -> set[str]:
        self.batches.append(deliveries)
        return {d.message_id for d in deliveries} - self.refuse


def run(
    batches: list[list[dict[str, Any]]], handoff: FakeHandoff, **fake: Any
) -> tuple[Worker, FakeSqs]:
    stop = threading.Event()
    sqs = FakeSqs(batches, stop, **fake)
    worker = Worker(settings=load_settings({}), sqs=sqs, handoff=handoff, stop=stop)  # type: ignore[arg-type]
    worker.run()
    return worker, sqs


def test_deletes_exactly_what_the_server_confirmed_and_returns_the_rest() -> None:
    handoff = FakeHandoff(refuse=frozenset({"m1"}))
    worker, sqs = run([[message(0), message(1), message(2)]], handoff)
    assert [d.message_id for d in handoff.batches[0]] == ["m0", "m1", "m2"]
    assert sqs.deleted == ["r0", "r2"]
    assert sqs.released == ["r1"]
    assert worker.counters.summary((c.RECEIVED, c.DELIVERED, c.RETURNED)) == (
        "received=3 delivered=2 returned=1"
    )


def test_parses_the_envelope_and_keeps_the_sent_timestamp() -> None:
    handoff = FakeHandoff()
    run([[message(0, {"event": "order", "data": {"x": 1}, "room": "shop"})]], handoff)
    [delivery] = handoff.batches[0]
    assert (delivery.envelope.event, delivery.envelope.data, delivery.envelope.room) == (
        "order",
        {"x": 1},
        "shop",
    )
    assert delivery.sent_ms == 1_700_000_000_000


def test_an_undeliverable_body_goes_to_the_dead_letter_queue_with_its_reason(caplog: Any) -> None:
    handoff = FakeHandoff()
    bad = message(0, "not json") | {
        "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}
    }
    worker, sqs = run([[bad, message(1)]], handoff)
    assert [d.message_id for d in handoff.batches[0]] == ["m1"]
    [moved] = sqs.dead
    assert moved["MessageBody"] == "not json"
    attributes = {k: v["StringValue"] for k, v in moved["MessageAttributes"].items()}
    assert attributes["k"] == "v"
    assert attributes["relay_error_code"] == "not_json"
    assert attributes["relay_error_reason"].startswith("body is not JSON")
    assert attributes["relay_source_message_id"] == "m0"
    assert sqs.deleted == ["r1", "r0"] and sqs.released == []
    assert worker.counters.get(c.DEAD_LETTERED, "not_json") == 1
    assert caplog.text.count("Dead-lettered message m0 (not_json): body is not JSON") == 1


def test_without_a_dead_letter_queue_a_bad_body_stays_on_the_queue(caplog: Any) -> None:
    handoff = FakeHandoff()
    worker, sqs = run([[message(0, "not json"), message(1)]], handoff, redrive=False)
    assert sqs.deleted == ["r1"] and sqs.dead == []
    assert worker.counters.total(c.DEAD_LETTERED) == 0
    assert "has no redrive policy and SQS_DLQ_URL is unset" in caplog.text
    assert "Message m0 cannot be delivered (not_json, receive #1)" in caplog.text


def test_waits_for_the_queue_then_consumes(caplog: Any) -> None:
    caplog.set_level("INFO")
    _worker, sqs = run([[message(0)]], FakeHandoff(), down_first=2)
    assert sqs.deleted == ["r0"]
    assert caplog.text.count("Waiting for SQS queue") == 1


def test_stopping_before_anything_is_received_receives_nothing() -> None:
    stop = threading.Event()
    stop.set()
    sqs = FakeSqs([[message(0)]], stop)
    Worker(settings=load_settings({}), sqs=sqs, handoff=FakeHandoff(), stop=stop).run()  # type: ignore[arg-type]
    assert sqs.receives == 0
