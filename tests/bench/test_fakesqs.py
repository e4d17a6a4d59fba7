"""bench/fakesqs.py driven by a real boto3 client, as a subprocess started the way bench/ does."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
MAIN_QUEUE = "push-relay"


@dataclass
class FakeSQSProcess:
    proc: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def client(self, read_timeout_s: float = 30) -> Any:
        # One attempt only: a retry would hide a wrong answer behind a slow right one. The read
        # timeout must outlast the longest long poll used here, unless a test means a poll that
        # runs to its end to fail.
        return boto3.session.Session(region_name="us-east-1").client(
            "sqs",
            endpoint_url=self.endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(
                retries={"max_attempts": 1}, connect_timeout=2, read_timeout=read_timeout_s
            ),
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(log: Path) -> FakeSQSProcess:
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fakesqs", "--port", str(port), "--queue", MAIN_QUEUE],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    fake = FakeSQSProcess(proc, f"http://127.0.0.1:{port}", log)
    client = fake.client()
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fakesqs exited early:\n{log.read_text()}")
            try:
                client.get_queue_url(QueueName=MAIN_QUEUE)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling interval of a readiness check
    except BaseException:
        fake.stop()
        raise
    finally:
        client.close()
    return fake


@pytest.fixture(scope="module")
def fakesqs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSQSProcess]:
    fake = _start(tmp_path_factory.mktemp("fakesqs") / "fakesqs.log")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def sqs(fakesqs: FakeSQSProcess) -> Iterator[Any]:
    client = fakesqs.client()
    yield client
    client.close()


@pytest.fixture
def queue_url(sqs: Any) -> str:
    """A fresh queue per test, so tests share the server but not messages."""
    return str(sqs.create_queue(QueueName=f"t-{uuid.uuid4().hex[:12]}")["QueueUrl"])


#: A long poll's WaitTimeSeconds (SQS's maximum), and a read timeout well inside it: a client
#: with that timeout fails if the poll runs to its end instead of waking.
LONG_POLL_S = 20
WAKE_WITHIN_S = 10


class LongPoll:
    """A 20 s ReceiveMessage on a queue that looks empty, on its own client and thread, and
    the fake's own signal that it is parked.

    The queue (maxReceiveCount 1) holds one message already received once: the poll's first
    look moves it to the dead-letter queue, finds nothing else, and parks. The handler does
    not await between that move and parking, and the fake runs on one event loop, so no other
    request sees the move before the poll is parked: the DLQ's count reading 1 means it is."""

    def __init__(self, fake: FakeSQSProcess, sqs: Any) -> None:
        self.sqs = sqs
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
        self.url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})[
            "QueueUrl"
        ]
        sqs.send_message(QueueUrl=self.url, MessageBody="poison")
        (first,) = sqs.receive_message(QueueUrl=self.url, VisibilityTimeout=0)["Messages"]
        assert first["Body"] == "poison" and _counts(sqs, self.dlq) == (0, 0)
        self.client = fake.client(read_timeout_s=WAKE_WITHIN_S)
        self.outcome: list[object] = []
        self.thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        try:
            self.outcome.append(
                self.client.receive_message(QueueUrl=self.url, WaitTimeSeconds=LONG_POLL_S)
            )
        except Exception as exc:
            self.outcome.append(exc)

    def open(self) -> None:
        """Start the poll and return once the fake has parked it."""
        self.thread.start()
        wait_until(
            lambda: self.outcome or _counts(self.sqs, self.dlq) == (1, 0),
            timeout_s=10,
            what="the long poll to park",
        )
        assert not self.outcome, f"the poll ended before it parked: {self.outcome}"

    def result(self) -> object:
        """What the poll got: an answer or the exception it raised."""
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the long poll never ended"
        self.client.close()
        (outcome,) = self.outcome
        return outcome


def _counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_ready_line_and_url(fakesqs: FakeSQSProcess, sqs: Any) -> None:
    url = f"{fakesqs.endpoint}/{ACCOUNT}/{MAIN_QUEUE}"
    ready = [line for line in fakesqs.log.read_text().splitlines() if "ready" in line]
    assert ready == [f"fakesqs ready: {url}"]
    assert sqs.get_queue_url(QueueName=MAIN_QUEUE)["QueueUrl"] == url
    assert (
        sqs.get_queue_url(QueueName=MAIN_QUEUE, QueueOwnerAWSAccountId=ACCOUNT)["QueueUrl"] == url
    )
    # CreateQueue on an existing queue is idempotent.
    assert sqs.create_queue(QueueName=MAIN_QUEUE)["QueueUrl"] == url


def test_round_trip_with_message_attributes(sqs: Any, queue_url: str) -> None:
    body = "héllo ✓ " + "x" * 1000
    attributes = {
        "kind": {"DataType": "String", "StringValue": "greeting"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }
    before_ms = int(time.time() * 1000)
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes)
    after_ms = int(time.time() * 1000)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert len(sent["MD5OfMessageAttributes"]) == 32

    (message,) = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
    )["Messages"]
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == body
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MessageAttributes"] == attributes  # the blob comes back as bytes
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert set(message["Attributes"]) == {"SentTimestamp", "ApproximateReceiveCount"}
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert before_ms <= int(message["Attributes"]["SentTimestamp"]) <= after_ms

    # Without MessageAttributeNames / system names, neither map is returned.
    plain = sqs.send_message(QueueUrl=queue_url, MessageBody="plain")
    assert "MD5OfMessageAttributes" not in plain
    (bare,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert bare["Body"] == "plain" and "Attributes" not in bare and "MessageAttributes" not in bare

    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=bare["ReceiptHandle"])
    assert _counts(sqs, queue_url) == (0, 0)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)


def test_attribute_md5_matches_moto() -> None:
    # moto's implementation is checked against the AWS SDKs by moto's own tests.
    from moto.sqs.models import Message

    from bench.fakesqs import _md5_of_attributes

    wire = {
        "b": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\xff").decode()},
        "a": {"DataType": "String.custom", "StringValue": "é"},
        "n": {"DataType": "Number", "StringValue": "1.5"},
    }
    reference = Message("id", "body")
    reference.message_attributes = {
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        "a": wire["a"],
        "n": wire["n"],
    }
    assert _md5_of_attributes(wire) == reference.attribute_md5


def test_batch_send_receive_delete(sqs: Any, queue_url: str) -> None:
    entries = [{"Id": f"e{i}", "MessageBody": f"body-{i}"} for i in range(10)]
    sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    assert sent.get("Failed", []) == []
    assert sorted(s["Id"] for s in sent["Successful"]) == sorted(e["Id"] for e in entries)
    for s in sent["Successful"]:
        body = f"body-{s['Id'][1:]}"
        assert s["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()

    seen: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(seen) < 10 and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=4, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            assert m["Body"] not in seen, "a message was delivered twice"
            seen[m["Body"]] = m["ReceiptHandle"]
    assert sorted(seen) == sorted(e["MessageBody"] for e in entries)
    assert _counts(sqs, queue_url) == (0, 10)

    handles = list(seen.values())
    deleted = sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
    )
    assert len(deleted["Successful"]) == 10 and deleted.get("Failed", []) == []
    assert _counts(sqs, queue_url) == (0, 0)


def test_batch_errors(sqs: Any, queue_url: str) -> None:
    mixed = sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": "ok", "MessageBody": "fine"}, {"Id": "empty", "MessageBody": ""}],
    )
    assert [s["Id"] for s in mixed["Successful"]] == ["ok"]
    assert [(f["Id"], f["SenderFault"]) for f in mixed["Failed"]] == [("empty", True)]

    too_many = [{"Id": str(i), "MessageBody": "b"} for i in range(11)]
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(QueueUrl=queue_url, Entries=too_many)
    assert (
        info.value.response["Error"]["Code"]
        == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    )

    # A handle that this server never issued is rejected per entry.
    bad = sqs.delete_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": "x", "ReceiptHandle": "not-a-handle"}]
    )
    assert [f["Code"] for f in bad["Failed"]] == ["ReceiptHandleIsInvalid"]


def test_visibility_timeout(fakesqs: FakeSQSProcess, sqs: Any, queue_url: str) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody="v")
    (first,) = sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=1)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    assert _counts(sqs, queue_url) == (0, 1)

    # A long poll wakes when the visibility timeout runs out, not only on new messages: without
    # that wake-up this 20 s poll would only find the message at its end, and its client, which
    # gives up after 10 s, would raise ReadTimeoutError.
    waker = fakesqs.client(read_timeout_s=WAKE_WITHIN_S)
    try:
        (second,) = waker.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=LONG_POLL_S, MessageSystemAttributeNames=["All"]
        )["Messages"]
    finally:
        waker.close()
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"

    # The stale handle is accepted but does nothing; the current one deletes.
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=first["ReceiptHandle"])
    assert _counts(sqs, queue_url) == (0, 1)
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=second["ReceiptHandle"])
    assert _counts(sqs, queue_url) == (0, 0)


def test_change_visibility_batch_to_zero(sqs: Any, queue_url: str) -> None:
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600)
    messages = got["Messages"]
    assert len(messages) == 3
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)

    changed = sqs.change_message_visibility_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ],
    )
    assert len(changed["Successful"]) == 3 and changed.get("Failed", []) == []
    assert _counts(sqs, queue_url) == (3, 0)
    again = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["MessageId"] for m in again) == sorted(m["MessageId"] for m in messages)

    # Extending the timeout of one keeps it hidden; the single-entry call works too.
    sqs.change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=600
    )
    assert _counts(sqs, queue_url) == (0, 3)


def test_a_parked_long_poll_returns_a_message_sent_meanwhile(
    fakesqs: FakeSQSProcess, sqs: Any
) -> None:
    # Given a 20 s long poll parked on an empty queue, its client giving up after 10 s
    poll = LongPoll(fakesqs, sqs)
    poll.open()

    # When a message is sent to that queue
    sqs.send_message(QueueUrl=poll.url, MessageBody="late")

    # Then the poll wakes and returns it (a poll that ran to its end would time out instead)
    outcome = poll.result()
    assert isinstance(outcome, dict), outcome
    assert [m["Body"] for m in outcome["Messages"]] == ["late"]


def test_queue_attribute_counts(sqs: Any, queue_url: str) -> None:
    for i in range(3):
        sqs.send_message(QueueUrl=queue_url, MessageBody=str(i))
    assert _counts(sqs, queue_url) == (3, 0)
    sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=2)
    assert _counts(sqs, queue_url) == (1, 2)

    everything = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    name = queue_url.rsplit("/", 1)[-1]
    assert everything["QueueArn"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"
    assert everything["VisibilityTimeout"] == "30"
    assert everything["ApproximateNumberOfMessages"] == "1"


def test_unknown_queue(sqs: Any, fakesqs: FakeSQSProcess) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        sqs.get_queue_url(QueueName="no-such-queue")
    assert info.value.response["Error"]["Code"] in (
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    )
    with pytest.raises(ClientError) as info:
        sqs.receive_message(QueueUrl=f"{fakesqs.endpoint}/{ACCOUNT}/no-such-queue")
    assert info.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_redrive_policy_names_the_dlq(sqs: Any) -> None:
    main = sqs.get_queue_url(QueueName=MAIN_QUEUE)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=f"{MAIN_QUEUE}-dlq")["QueueUrl"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=main, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert (
        policy["deadLetterTargetArn"]
        == dlq_arn
        == f"arn:aws:sqs:us-east-1:{ACCOUNT}:{MAIN_QUEUE}-dlq"
    )
    assert int(policy["maxReceiveCount"]) == 5


def test_redrive_moves_a_message_after_max_receives(sqs: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        (m,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["poison"]


def test_sigterm_during_a_long_poll_answers_it_empty_and_exits(tmp_path: Path) -> None:
    # Given a fakesqs of its own with a 20 s long poll parked in it
    fake = _start(tmp_path / "fakesqs.log")
    client = fake.client()
    try:
        poll = LongPoll(fake, client)
        poll.open()

        # When it is sent SIGTERM
        fake.proc.send_signal(signal.SIGTERM)

        # Then it exits with status 0 without waiting for the poll's end (10 s stops a hung
        # test; the poll would hold it 20 s), and the poll gets an empty answer, not a cut
        try:
            returncode = fake.proc.wait(timeout=WAKE_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fakesqs still runs {WAKE_WITHIN_S} s after SIGTERM")
        assert returncode == 0
        outcome = poll.result()
        assert isinstance(outcome, dict), outcome
        assert "Messages" not in outcome
    finally:
        fake.stop()
        client.close()
