"""The worker on a FIFO queue, with fakes at its two boundaries: each message group keeps its
order through the hand-off, a returned batch and a poison message (issue 29, part 1).

tests/integration/test_fifo.py proves the same end to end on moto's FIFO queue.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from shared import counters as c
from shared.counters import Counters
from shared.settings import load_settings
from tests.worker.test_consumer import FakeHandoff, FakeSqs
from worker.consumer import Worker

QUEUE_URL = "http://127.0.0.1:9324/123456789012/events.fifo"
DLQ_URL = "http://127.0.0.1:9324/123456789012/events-dlq.fifo"


def message(group: str, n: int, body: Any = None) -> dict[str, Any]:
    """Message `n` of `group` (its MessageId and receipt handle say both)."""
    return {
        "MessageId": f"{group}{n}",
        "ReceiptHandle": f"r-{group}{n}",
        "Body": body if isinstance(body, str) else json.dumps({"event": "e", "data": n}),
        "Attributes": {
            "SentTimestamp": "1700000000000",
            "ApproximateReceiveCount": "1",
            "MessageGroupId": group,
        },
    }


class FifoSqs(FakeSqs):
    """FakeSqs with a FIFO dead-letter queue, recording each receive's arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.receive_calls: list[dict[str, Any]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receive_calls.append(kwargs)
        return super().receive_message(**kwargs)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["QueueUrl"] == DLQ_URL
        self.dead.append(kwargs)
        return {"MessageId": "dlq-1"}


def run(
    batches: list[list[dict[str, Any]]],
    handoff: FakeHandoff,
    *,
    queue_url: str = QUEUE_URL,
    dlq_url: str | None = DLQ_URL,
) -> tuple[Worker, FifoSqs]:
    stop = threading.Event()
    sqs = FifoSqs(batches, stop, redrive=False)
    env = {"SQS_QUEUE_URL": queue_url} | ({"SQS_DLQ_URL": dlq_url} if dlq_url else {})
    worker = Worker(
        counters=Counters(), settings=load_settings(env), sqs=sqs, handoff=handoff, stop=stop
    )  # type: ignore[arg-type]
    worker.run()
    return worker, sqs


def test_a_groups_messages_after_its_first_unconfirmed_one_go_back_with_it_other_groups_go_on() -> (
    None
):
    # Given a batch of two interleaved groups, and a server that does not confirm a2
    handoff = FakeHandoff(refuse=frozenset({"a2"}))

    # When the worker handles it
    worker, sqs = run([[message("a", 1), message("b", 1), message("a", 2), message("a", 3),
                        message("b", 2)]], handoff)  # fmt: skip

    # Then all were handed off in the batch's order; a3 was confirmed but is not deleted: it
    # goes back with a2, so that it is never deleted before a2 is redelivered; b goes on
    assert [d.message_id for d in handoff.batches[0]] == ["a1", "b1", "a2", "a3", "b2"]
    assert sqs.deleted == ["r-a1", "r-b1", "r-b2"]
    assert sqs.released == ["r-a2", "r-a3"]
    assert worker.counters.summary((c.DELIVERED, c.RETURNED)) == "delivered=3 returned=2"


def test_on_a_standard_queue_a_confirmed_message_after_an_unconfirmed_one_is_deleted() -> None:
    # Given the same batch on a standard queue (the groups are ignored there)
    handoff = FakeHandoff(refuse=frozenset({"a2"}))
    plain = [message("a", 1), message("a", 2), message("a", 3)]

    # When the worker handles it
    _worker, sqs = run([plain], handoff, queue_url=QUEUE_URL.removesuffix(".fifo"), dlq_url=None)

    # Then only the unconfirmed one goes back
    assert sqs.deleted == ["r-a1", "r-a3"]
    assert sqs.released == ["r-a2"]


def test_a_poison_message_goes_to_the_fifo_dlq_in_its_group_and_its_group_goes_on() -> None:
    # Given a group with a body that is not JSON in the middle
    handoff = FakeHandoff()

    # When the worker handles it
    worker, sqs = run([[message("a", 1), message("a", 2, "not json"), message("a", 3)]], handoff)

    # Then the poison is copied to the FIFO DLQ with its group and its MessageId as the
    # de-duplication id (a second move of the same message leaves one copy), and deleted; the
    # rest of its group is handed off in order and deleted
    [dead] = sqs.dead
    assert (dead["MessageBody"], dead["MessageGroupId"], dead["MessageDeduplicationId"]) == (
        "not json",
        "a",
        "a2",
    )
    assert dead["MessageAttributes"]["relay_error_code"]["StringValue"] == "not_json"
    assert [d.message_id for d in handoff.batches[0]] == ["a1", "a3"]
    assert sorted(sqs.deleted) == ["r-a1", "r-a2", "r-a3"]
    assert sqs.released == []
    assert worker.counters.summary((c.DELIVERED, c.DEAD_LETTERED)) == (
        "delivered=2 dead_lettered[not_json]=1"
    )


def test_without_a_dlq_a_poison_message_holds_back_the_rest_of_its_group_only() -> None:
    # Given no dead-letter queue, and a poison message in the middle of group a
    handoff = FakeHandoff()
    batch = [message("a", 1), message("a", 2, "not json"), message("b", 1), message("a", 3)]

    # When the worker handles it
    _worker, sqs = run([batch], handoff, dlq_url=None)

    # Then the poison stays in flight (SQS holds the group until it reappears), a3 is not
    # handed off but returned behind it, and group b goes on
    assert [d.message_id for d in handoff.batches[0]] == ["a1", "b1"]
    assert sqs.deleted == ["r-a1", "r-b1"]
    assert sqs.released == ["r-a3"]


def test_receives_ask_for_the_message_group_on_a_fifo_queue_only() -> None:
    _worker, fifo = run([[message("a", 1)]], FakeHandoff())
    _worker, plain = run(
        [[message("a", 1)]], FakeHandoff(), queue_url=QUEUE_URL.removesuffix(".fifo"), dlq_url=None
    )
    assert "MessageGroupId" in fifo.receive_calls[0]["MessageSystemAttributeNames"]
    assert "MessageGroupId" not in plain.receive_calls[0]["MessageSystemAttributeNames"]
