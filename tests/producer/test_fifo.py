"""The producer on FIFO queues against a fake SQS client: the group and the de-duplication id
each message carries, and the refusals before anything is sent (issue 29, part 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from producer import FifoError, disconnect_user, publish, publish_batch
from producer.__main__ import main, parse_command
from shared.envelope import Envelope

FIFO = "http://sqs/123456789012/events.fifo"
STANDARD = "http://sqs/123456789012/events"


class RecordingSQS:
    """Records every message's SQS parameters, in the order sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": f"m{len(self.sent)}"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.sent += [{"QueueUrl": QueueUrl} | entry for entry in Entries]
        return {"Successful": [{"Id": e["Id"], "MessageId": f"m{e['Id']}"} for e in Entries]}


def test_publish_sends_the_group_and_the_dedup_id_to_a_fifo_queue() -> None:
    sqs = RecordingSQS()

    publish(sqs, FIFO, "status", {"order": 7}, group="order-7", dedup_id="7-3")  # type: ignore[arg-type]
    publish(sqs, FIFO, "status", {"order": 8}, group="order-8")  # type: ignore[arg-type]

    first, second = sqs.sent
    assert (first["MessageGroupId"], first["MessageDeduplicationId"]) == ("order-7", "7-3")
    assert second["MessageGroupId"] == "order-8"
    assert "MessageDeduplicationId" not in second  # left to content-based de-duplication


def test_publish_batch_gives_each_envelope_its_group_and_dedup_id_in_order() -> None:
    sqs = RecordingSQS()
    envelopes = [Envelope("status", {"order": n % 3, "v": n}) for n in range(12)]

    publish_batch(
        sqs,  # type: ignore[arg-type]
        FIFO,
        envelopes,
        group=lambda e: f"order-{e.data['order']}",
        dedup_id=lambda e: f"{e.data['order']}-{e.data['v']}",
    )
    publish_batch(sqs, FIFO, envelopes[:2], group="all")  # type: ignore[arg-type]

    assert [m["MessageGroupId"] for m in sqs.sent[:12]] == [f"order-{n % 3}" for n in range(12)]
    assert [m["MessageDeduplicationId"] for m in sqs.sent[:12]] == [
        f"{n % 3}-{n}" for n in range(12)
    ]
    assert [m["MessageGroupId"] for m in sqs.sent[12:]] == ["all", "all"]
    assert all("MessageDeduplicationId" not in m for m in sqs.sent[12:])


@pytest.mark.parametrize(
    ("url", "fifo", "says"),
    [
        (FIFO, {}, "is a FIFO queue: give a message group"),
        (STANDARD, {"group": "g"}, "is a standard queue: a message group"),
        (STANDARD, {"dedup_id": "d"}, "is a standard queue: a de-duplication id"),
    ],
)
def test_a_group_missing_for_a_fifo_queue_or_given_for_a_standard_one_is_refused_before_sending(
    url: str, fifo: dict[str, str], says: str
) -> None:
    sqs = RecordingSQS()
    batch_fifo: dict[str, Any] = {"group": fifo["group"]} if "group" in fifo else {}
    if "dedup_id" in fifo:
        batch_fifo["dedup_id"] = lambda e: "d"
    calls = [
        lambda: publish(sqs, url, "e", 1, **fifo),  # type: ignore[arg-type]
        lambda: publish_batch(sqs, url, [Envelope("e", 1)], **batch_fifo),  # type: ignore[arg-type]
        lambda: disconnect_user(sqs, url, "alice", **fifo),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(FifoError, match=says):
            call()
    assert sqs.sent == []


def test_the_command_takes_a_group_and_numbers_the_dedup_id_per_message() -> None:
    command = parse_command(["--event", "e", "--group", "g1", "--dedup-id", "x", "--count", "3"])
    assert (command.group, command.dedup_ids) == ("g1", ["x-0", "x-1", "x-2"])
    one = parse_command(["--group", "g1", "--dedup-id", "x"])
    assert (one.group, one.dedup_ids) == ("g1", ["x"])


@pytest.mark.parametrize(
    ("url", "argv", "says"),
    [
        (FIFO, ["--event", "e"], "is a FIFO queue: give a message group"),
        (STANDARD, ["--event", "e", "--group", "g"], "is a standard queue: a message group"),
        (STANDARD, ["--dedup-id", "d"], "--dedup-id goes with --group"),
    ],
)
def test_the_command_refuses_a_wrong_group_for_the_queue_with_status_2_before_sending(
    url: str,
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SQS_QUEUE_URL", url)
    # an endpoint nothing listens on: a send would fail with status 1, not 2
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    assert says in capsys.readouterr().err
