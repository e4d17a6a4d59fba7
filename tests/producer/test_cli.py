"""`python -m producer`: its arguments (tests/integration/test_producer.py runs it)."""

from __future__ import annotations

import pytest

from producer.__main__ import main, parse_args
from shared.envelope import Envelope, parse_body


def envelopes(argv: list[str]) -> list[Envelope]:
    return [parse_body(body, default_event="message") for body in parse_args(argv)]


def test_the_options_make_envelopes() -> None:
    assert envelopes(["--event", "order", "--data", '{"id": 7}']) == [Envelope("order", {"id": 7})]
    assert envelopes(["--room", "shop", "--namespace", "/admin", "--data", '"hi"']) == [
        Envelope("message", "hi", "shop", "/admin")
    ]
    assert envelopes(["--room", "a", "--room", "b"]) == [Envelope("message", {"n": 0}, ("a", "b"))]
    assert envelopes(["--user", "alice"]) == [Envelope("message", {"n": 0}, user="alice")]
    assert envelopes(["--user", "alice", "--user", "bob", "--room", "a"]) == [
        Envelope("message", {"n": 0}, "a", user=("alice", "bob"))
    ]
    assert envelopes(["--event", "tick", "--count", "3"]) == [
        Envelope("tick", {"n": n}) for n in range(3)
    ]


def test_raw_sends_the_body_as_it_is() -> None:
    assert parse_args(["--raw", "not json", "--count", "2"]) == ["not json", "not json"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--data", "{oops"], "--data is not JSON"),
        (["--data", "NaN"], "(not_finite)"),
        (["--event", "connect"], "(bad_envelope)"),
        (["--room", "relay:all"], "(bad_envelope)"),
        (["--user", ""], "(bad_envelope)"),
        (["--namespace", "admin"], "(bad_envelope)"),
        (["--count", "0"], "--count must be at least 1"),
    ],
)
def test_an_event_the_worker_would_refuse_is_a_usage_error(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert says in capsys.readouterr().err


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for option in ("--event", "--data", "--room", "--user", "--namespace", "--raw", "--count"):
        assert option in text
    assert "SQS_QUEUE_URL" in text
    assert "python -m producer --event order" in text
