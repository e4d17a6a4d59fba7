"""The worker loop with simple fakes at its two boundaries (SQS and the hand-off)."""

from __future__ import annotations

import json
import threading
from typing import Any

from botocore.exceptions import EndpointConnectionError

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


class FakeSqs:
    def __init__(
        self, batches: list[list[dict[str, Any]]], stop: threading.Event, *, down_first: int = 0
    ):
        self._batches = list(batches)
        self._stop = stop
        self._down = down_first
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.receives = 0

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        if self._down:
            self._down -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return {"Attributes": {}}

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
    assert (worker.received, worker.deleted, worker.returned) == (3, 2, 1)


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


def test_an_undeliverable_body_is_logged_and_left_for_the_dead_letter_queue(caplog: Any) -> None:
    handoff = FakeHandoff()
    worker, sqs = run([[message(0, "not json"), message(1)]], handoff)
    assert [d.message_id for d in handoff.batches[0]] == ["m1"]
    assert sqs.deleted == ["r1"] and sqs.released == []
    assert worker.undeliverable == 1
    assert "Message m0 cannot be delivered (receive #1): body is not JSON" in caplog.text


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
