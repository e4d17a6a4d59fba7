"""The worker loop with simple fakes at its two boundaries (SQS and the hand-off)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import EndpointConnectionError

from shared import counters as c
from shared.counters import Counters
from shared.settings import load_settings
from shared.sqs import make_sqs_client
from shared.wire import Delivery
from worker.consumer import Worker, parse_message


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
        visibility_timeout_s: int = 30,
    ):
        self._batches = list(batches)
        self._stop = stop
        self._down = down_first
        self._redrive = redrive
        self._visibility_timeout_s = visibility_timeout_s
        self.attribute_calls: list[list[str]] = []
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.dead: list[dict[str, Any]] = []
        self.receives = 0

    def get_queue_attributes(self, AttributeNames: list[str], **_: Any) -> dict[str, Any]:
        self.attribute_calls.append(AttributeNames)
        if self._down:
            self._down -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        policy = json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5})
        values = {"VisibilityTimeout": str(self._visibility_timeout_s)}
        if self._redrive:
            values["RedrivePolicy"] = policy
        return {"Attributes": {k: v for k, v in values.items() if k in AttributeNames}}

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
        self.visibility_timeout_s: float | None = None

    def set_visibility_timeout(self, seconds: float | None) -> None:
        self.visibility_timeout_s = seconds

    def wait_ready(self, stop: threading.Event) -> bool:
        return not stop.is_set()

    def deliver(self, deliveries: list[Delivery], stop: threading.Event, **_: Any) -> set[str]:
        self.batches.append(deliveries)
        return {d.message_id for d in deliveries} - self.refuse


def run(
    batches: list[list[dict[str, Any]]],
    handoff: FakeHandoff,
    *,
    env: dict[str, str] | None = None,
    **fake: Any,
) -> tuple[Worker, FakeSqs]:
    stop = threading.Event()
    sqs = FakeSqs(batches, stop, **fake)
    worker = Worker(
        counters=Counters(), settings=load_settings(env or {}), sqs=sqs, handoff=handoff, stop=stop
    )  # type: ignore[arg-type]
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
    Worker(
        counters=Counters(), settings=load_settings({}), sqs=sqs, handoff=FakeHandoff(), stop=stop
    ).run()  # type: ignore[arg-type]
    assert sqs.receives == 0


# --- one bad message never holds up its batch -------------------------------------------------

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000


def dead_attributes(sqs: FakeSqs) -> dict[str, dict[str, str]]:
    """The DLQ copies by source MessageId, each with its relay_* attributes."""
    return {
        moved["MessageAttributes"]["relay_source_message_id"]["StringValue"]: {
            k: v["StringValue"] for k, v in moved["MessageAttributes"].items()
        }
        for moved in sqs.dead
    }


def test_any_exception_while_decoding_dead_letters_that_message_alone(caplog: Any) -> None:
    # Given a parse function that raises a plain RuntimeError for one message of ten
    def parse(message: dict[str, Any], settings: Any) -> Any:
        if message["MessageId"] == "m3":
            raise RuntimeError("the decoder broke")
        return parse_message(message, settings)

    stop = threading.Event()
    batch = [message(n) for n in range(10)]
    sqs = FakeSqs([batch], stop)
    handoff = FakeHandoff()
    worker = Worker(
        counters=Counters(),
        settings=load_settings({}),
        sqs=sqs,
        handoff=handoff,
        stop=stop,
        parse=parse,  # type: ignore[arg-type]
    )

    # When the worker handles that batch
    worker.run()

    # Then the nine others are handed off and deleted, and that one goes to the DLQ alone
    assert [d.message_id for d in handoff.batches[0]] == [f"m{n}" for n in range(10) if n != 3]
    assert sorted(sqs.deleted) == sorted(f"r{n}" for n in range(10))
    assert sqs.released == []
    [attributes] = dead_attributes(sqs).values()
    assert attributes["relay_source_message_id"] == "m3"
    assert attributes["relay_error_code"] == "decode_failed"
    assert attributes["relay_error_reason"] == "RuntimeError: the decoder broke"
    assert worker.counters.get(c.DEAD_LETTERED, "decode_failed") == 1
    assert worker.counters.get(c.DELIVERED) == 9
    assert "Dead-lettered message m3 (decode_failed): RuntimeError: the decoder broke" in (
        caplog.text
    )


def test_bodies_that_break_pythons_decoder_are_dead_lettered_by_their_own_code_alone() -> None:
    # Given, among good messages, a 4,301-digit integer (Python's int limit raises ValueError)
    # and a room attribute nested 10^5 deep (json.loads raises RecursionError)
    huge = message(1, '{"event":"e","data":' + "1" * 4301 + "}")
    deep = message(3) | {
        "MessageAttributes": {"room": {"DataType": "String.Array", "StringValue": DEEP_ARRAY}}
    }
    batch = [message(0), huge, message(2), deep, message(4)]

    # When the worker handles them in one batch
    worker, sqs = run([batch], handoff := FakeHandoff())

    # Then the good ones are delivered and every message leaves the queue
    assert [d.message_id for d in handoff.batches[0]] == ["m0", "m2", "m4"]
    assert sorted(sqs.deleted) == [f"r{n}" for n in range(5)]
    # And the two bad ones reach the DLQ named by the envelope's own codes, not as an
    # unexpected exception (decode_failed, the catch-all)
    dead = dead_attributes(sqs)
    assert set(dead) == {"m1", "m3"}
    assert (dead["m1"]["relay_error_code"], dead["m1"]["relay_error_reason"]) == (
        "bad_number",
        "body has an integer of more than 4300 digits, which no decoder holds",
    )
    assert (dead["m3"]["relay_error_code"], dead["m3"]["relay_error_reason"]) == (
        "too_deep",
        "room attribute of type String.Array is JSON nested too deeply to decode",
    )
    assert worker.counters.get(c.DEAD_LETTERED, "bad_number") == 1
    assert worker.counters.get(c.DEAD_LETTERED, "too_deep") == 1
    assert worker.counters.get(c.DEAD_LETTERED, "decode_failed") == 0


# --- the queue's visibility timeout ------------------------------------------------------------


def test_reads_the_dlq_and_the_visibility_timeout_in_one_call_and_pings_with_it() -> None:
    handoff = FakeHandoff()
    _worker, sqs = run([[message(0)]], handoff, visibility_timeout_s=45)
    assert sqs.attribute_calls == [["RedrivePolicy", "VisibilityTimeout"]]
    assert handoff.visibility_timeout_s == 45
    assert sqs.deleted == ["r0"]


def test_sqs_visibility_timeout_s_wins_over_the_queues() -> None:
    handoff = FakeHandoff()
    run([[message(0)]], handoff, env={"SQS_VISIBILITY_TIMEOUT_S": "12"})
    handoff_with_dlq = FakeHandoff()
    _w, sqs = run(
        [[message(0)]],
        handoff_with_dlq,
        env={"SQS_VISIBILITY_TIMEOUT_S": "12", "SQS_DLQ_URL": DLQ_URL},
    )
    assert handoff.visibility_timeout_s == handoff_with_dlq.visibility_timeout_s == 12
    assert sqs.attribute_calls == []  # nothing left to ask the queue


def test_refuses_to_run_when_the_ack_timeout_is_not_below_the_visibility_timeout(
    caplog: Any,
) -> None:
    # Given a queue whose messages reappear after 5 s, and a worker that waits up to 5 s
    stop = threading.Event()
    sqs = FakeSqs([[message(0)]], stop, visibility_timeout_s=5)
    worker = Worker(
        counters=Counters(),
        settings=load_settings({"ACK_TIMEOUT_S": "5"}),
        sqs=sqs,  # type: ignore[arg-type]
        handoff=FakeHandoff(),  # type: ignore[arg-type]
        stop=stop,
    )

    # When it starts, it stops at once with status 2, receiving nothing, and says why
    assert worker.run() == 2
    assert sqs.receives == 0
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "ACK_TIMEOUT_S=5.0" in error.getMessage()
    assert "VisibilityTimeout (5 s)" in error.getMessage()


def test_runs_when_the_ack_timeout_is_below_the_visibility_timeout() -> None:
    _worker, sqs = run(
        [[message(0)]], FakeHandoff(), env={"ACK_TIMEOUT_S": "4.5"}, visibility_timeout_s=5
    )
    assert sqs.deleted == ["r0"]


# --- SIGTERM ends an open long poll at once ----------------------------------------------------


class HangingSqs(ThreadingHTTPServer):
    """A real HTTP endpoint speaking SQS's JSON protocol: it answers GetQueueAttributes and
    holds every ReceiveMessage open (a long poll on an empty queue) until `release` is set."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), handler or _HangingHandler)
        self.receives = 0
        self.poll_open = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/123456789012/q"

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _HangingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HangingSqs

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        answer: dict[str, Any] = {}
        if operation == "GetQueueAttributes":
            answer = {"Attributes": {"VisibilityTimeout": "30"}}
        elif operation == "ReceiveMessage":
            self.server.receives += 1
            self.server.poll_open.set()
            self.server.release.wait(30)
        body = json.dumps(answer).encode()
        with contextlib.suppress(OSError):  # the client may be gone: that is the point
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def start_real_client_worker(
    sqs_server: HangingSqs,
) -> tuple[Worker, Any, threading.Event, threading.Thread]:
    """A worker with a real boto3 client against `sqs_server`, running in a thread."""
    settings = load_settings({"SQS_QUEUE_URL": sqs_server.queue_url})
    sqs = make_sqs_client(settings)
    stop = threading.Event()
    worker = Worker(
        counters=Counters(), settings=settings, sqs=sqs, handoff=FakeHandoff(), stop=stop
    )  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run)
    thread.start()
    return worker, sqs, stop, thread


def test_stop_ends_an_open_long_poll_at_once_without_a_retry(caplog: Any) -> None:
    # Given a worker with a real boto3 client in a 20-second long poll on an empty queue
    sqs_server = HangingSqs()
    worker, sqs, stop, thread = start_real_client_worker(sqs_server)
    try:
        assert sqs_server.poll_open.wait(10), "the worker never opened a long poll"

        # When it is told to stop
        stop.set()

        # Then the poll ends without waiting for an answer (the stand-in holds it 30 s, the
        # worker's read timeout is 30 s, and 10 s is only there to stop a hung test), botocore
        # does not retry it, and the abandoned poll is counted and explained
        thread.join(10)
        assert not thread.is_alive(), "the worker still waits for its long poll"
        assert sqs_server.receives == 1
        assert worker.counters.get(c.ABANDONED_POLLS) == 1
        assert (
            "up to 10 message(s) SQS may have handed to it reappear after the visibility timeout"
            in caplog.text
        )
    finally:
        sqs_server.close()
        thread.join(35)
        sqs.close()


def test_a_hand_off_that_fails_returns_its_batch_at_once() -> None:
    # Given a hand-off that raises (a ZeroMQ error, say) on the first batch
    class Failing(FakeHandoff):
        def deliver(self, deliveries: list[Delivery], stop: threading.Event, **_: Any) -> set[str]:
            if not self.batches:
                self.batches.append(deliveries)
                raise RuntimeError("socket gone")
            return super().deliver(deliveries, stop)

    bad = message(9, "not json")
    worker, sqs = run([[message(0), bad], [message(1)]], Failing())
    # Then the good message goes back to the queue now, the dead-lettered one is still
    # deleted, and the loop goes on to the next batch
    assert sqs.released == ["r0"]
    assert sqs.deleted == ["r9", "r1"]
    assert worker.counters.get(c.RETURNED) == 1


class BusySqs(HangingSqs):
    """The first ReceiveMessage brings one message at once; the next is held until `release`
    and then brings another: a busy queue whose poll answers soon after the stop."""

    def __init__(self) -> None:
        self.operations: list[str] = []
        super().__init__(_BusyHandler)


class _BusyHandler(_HangingHandler):
    server: BusySqs

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        self.server.operations.append(operation)
        answer: dict[str, Any] = {}
        if operation == "GetQueueAttributes":
            answer = {"Attributes": {"VisibilityTimeout": "30"}}
        elif operation == "ReceiveMessage":
            self.server.receives += 1
            if self.server.receives > 1:
                self.server.poll_open.set()
                self.server.release.wait(30)
            n = self.server.receives
            answer = {"Messages": [{**message(n), "MD5OfBody": _md5(message(n)["Body"])}]}
        elif operation in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            answer = {"Successful": [{"Id": "0"}], "Failed": []}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _md5(body: str) -> str:
    return hashlib.md5(body.encode()).hexdigest()


def test_on_a_busy_queue_stop_lets_the_open_poll_answer_and_returns_what_it_brought() -> None:
    # Given a worker whose last receive brought a message (a busy queue), now in a long poll
    sqs_server = BusySqs()
    worker, sqs, stop, thread = start_real_client_worker(sqs_server)
    try:
        assert sqs_server.poll_open.wait(10), "the worker never opened its second long poll"

        # When it is told to stop and the poll answers right after, with a message
        stop.set()
        sqs_server.release.set()

        # Then the poll was not cut off: its message went back to the queue at once
        thread.join(10)
        assert not thread.is_alive(), "the worker did not stop"
        assert worker.counters.get(c.ABANDONED_POLLS) == 0
        assert worker.counters.get(c.RETURNED_ON_SHUTDOWN) == 1
        assert sqs_server.operations[-1] == "ChangeMessageVisibilityBatch"
    finally:
        sqs_server.close()
        thread.join(35)
        sqs.close()
