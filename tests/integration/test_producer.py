"""`python -m producer` as a person runs it, against the SQS emulator."""

from __future__ import annotations

from shared.envelope import Envelope, parse_body
from tests.integration.helpers import run_producer
from tests.processes import Processes, Stack


def test_the_command_sends_to_the_queue_of_its_settings(processes: Processes, stack: Stack) -> None:
    # Given the SQS emulator with the test's queue
    processes.sqs(stack)

    # When the command sends one event, then 12 raw bodies
    one = run_producer(stack, "--event", "hello", "--room", "shop", "--data", '{"hi": 1}')
    many = run_producer(stack, "--raw", "[1]", "--count", "12")

    # Then each says what it sent, and the queue holds exactly that
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("MessageId ")
    assert "sent 1 of 1 message(s)" in one.stdout
    assert many.returncode == 0, many.stderr
    assert "sent 12 of 12 message(s)" in many.stdout
    sqs = stack.sqs_client()
    received: list[dict[str, str]] = []
    for _ in range(20):
        if len(received) == 13:
            break
        answer = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
        received += answer.get("Messages", [])
    first = next(m for m in received if m["MessageId"] == one.stdout.split()[1])
    assert parse_body(first["Body"], default_event="message") == Envelope(
        "hello", {"hi": 1}, "shop"
    )
    assert sorted(m["Body"] for m in received if m is not first) == ["[1]"] * 12


def test_the_command_says_when_sqs_cannot_be_reached(stack: Stack) -> None:
    # Given no SQS at the queue's address
    sent = run_producer(stack, "--event", "hello", AWS_MAX_ATTEMPTS="1")
    assert sent.returncode == 1
    assert "cannot send to" in sent.stderr
    assert "(is `honcho start` running?)" in sent.stderr
