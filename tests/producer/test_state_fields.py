"""A state's key and version, from `publish` and the command to the body the worker parses."""

from __future__ import annotations

from typing import Any

import pytest

from producer import publish
from producer.__main__ import parse_command
from shared.envelope import parse_body


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **request: Any) -> dict[str, str]:
        self.sent.append(request)
        return {"MessageId": "m-1"}


def test_publish_puts_the_key_and_version_in_the_envelope() -> None:
    sqs = FakeSqs()
    publish(sqs, "http://q/123/q", "order", {"s": 1}, room="orders:7", key="o-7", version=3)  # type: ignore[arg-type]
    envelope = parse_body(sqs.sent[0]["MessageBody"], default_event="message")
    assert (envelope.key, envelope.version, envelope.room) == ("o-7", 3, "orders:7")


def test_the_command_takes_a_key_and_a_version() -> None:
    command = parse_command(["--event", "order", "--key", "o-7", "--version", "12"])
    envelope = parse_body(command.bodies[0], default_event="message")
    assert (envelope.key, envelope.version) == ("o-7", 12)


def test_the_command_refuses_a_negative_version_before_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_command(["--key", "o-7", "--version", "-1"])
    assert exited.value.code == 2
    assert "'version'" in capsys.readouterr().err
