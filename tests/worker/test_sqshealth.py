"""SqsHealth: each failed SQS attempt counted by reason, one warning per outage, one line at
its end, and what /readyz says meanwhile (a fake clock, botocore's own exceptions)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from shared import counters as c
from shared.counters import Counters
from shared.settings import load_settings
from shared.sqs import make_sqs_client
from worker.sqshealth import SqsHealth, classify


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(status: int, code: str | None = None) -> tuple[Any, dict[str, Any]]:
    parsed: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status}}
    if code is not None:
        parsed["Error"] = {"Code": code, "Message": "no"}
    return SimpleNamespace(status_code=status), parsed


@pytest.mark.parametrize(
    ("response", "exception", "reason"),
    [
        (answer(200), None, None),
        (answer(400, "RequestThrottled"), None, "throttled"),
        (answer(400, "ThrottlingException"), None, "throttled"),
        (answer(500, "InternalError"), None, "server_error"),
        (answer(503, "ServiceUnavailable"), None, "server_error"),
        (answer(400, "QueueDoesNotExist"), None, "client_error"),
        (None, ReadTimeoutError(endpoint_url="http://sqs"), "timeout"),
        (None, ConnectionClosedError(endpoint_url="http://sqs"), "connection"),
    ],
)
def test_each_attempt_is_classified_by_what_sqs_answered(
    response: Any, exception: Exception | None, reason: str | None
) -> None:
    result = classify(response, exception)
    assert (result[0] if result else None) == reason


def test_an_outage_is_counted_per_attempt_logged_once_and_ends_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a health tracker whose last call succeeded
    counters, clock = Counters(), Clock()
    health = SqsHealth(counters, clock=clock)
    health.succeeded()
    assert health.problem() is None
    caplog.set_level(logging.INFO, logger="worker.sqshealth")

    # When three attempts are throttled over 12 s
    for _ in range(3):
        health.failed("ReceiveMessage", "throttled", "RequestThrottled: Rate exceeded")
        clock.now += 6

    # Then each is counted, one warning says so, and /readyz's reason names call and time
    assert counters.get(c.SQS_ERRORS, "throttled") == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ReceiveMessage throttled" in warnings[0].getMessage()
    assert health.problem() == "SQS: ReceiveMessage throttled for 18 s"

    # And when SQS answers again, one line says after how long, and /readyz is content
    health.succeeded()
    assert health.problem() is None
    [line] = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert line == "SQS answers again after 18.0 s of failures (3 failed call(s): throttled=3)"


def test_before_any_answer_readyz_says_so() -> None:
    assert SqsHealth(Counters()).problem() == "SQS: no call answered yet"


def test_it_follows_a_real_boto3_clients_attempts_and_not_a_fakes() -> None:
    health = SqsHealth(Counters())
    sqs = make_sqs_client(load_settings({}))
    assert health.install(sqs) is True
    assert health.install(object()) is False
