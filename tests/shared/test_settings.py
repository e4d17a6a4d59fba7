from __future__ import annotations

import pytest

from shared.settings import EMBEDDED_QUEUE_URL, SettingsError, load_settings


def test_defaults_point_at_the_embedded_emulator() -> None:
    settings = load_settings({})
    assert settings.sqs_queue_url == EMBEDDED_QUEUE_URL
    assert settings.sqs_endpoint_url == "http://127.0.0.1:9324"
    assert settings.queue_is_local
    assert settings.region == "us-east-1"
    assert settings.worker_endpoints == [settings.zmq_bind]


def test_a_real_aws_queue_url_leaves_the_endpoint_to_boto3_and_gives_the_region() -> None:
    settings = load_settings({"SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123/orders"})
    assert settings.sqs_endpoint_url is None
    assert settings.region == "eu-west-1"
    assert settings.queue_name == "orders"


def test_explicit_endpoint_and_region_win() -> None:
    settings = load_settings(
        {
            "SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123/orders",
            "AWS_ENDPOINT_URL_SQS": "http://localhost:4566",
            "AWS_DEFAULT_REGION": "ap-south-1",
        }
    )
    assert (settings.sqs_endpoint_url, settings.region) == ("http://localhost:4566", "ap-south-1")


def test_empty_endpoint_means_unset() -> None:
    assert load_settings({"AWS_ENDPOINT_URL_SQS": ""}).aws_endpoint_url_sqs is None


def test_zmq_connect_is_a_comma_separated_list() -> None:
    settings = load_settings({"ZMQ_CONNECT": "tcp://127.0.0.1:1, ipc:///tmp/relay"})
    assert settings.worker_endpoints == ["tcp://127.0.0.1:1", "ipc:///tmp/relay"]


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SQS_WAIT_S", "30", "less than or equal to 20"),
        ("SQS_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("PORT", "http", "valid integer"),
        ("SQS_QUEUE_URL", "not a url", "http(s) URL"),
        ("SQS_QUEUE_URL", "http://127.0.0.1:9324", "must name a queue"),
        ("ZMQ_BIND", "127.0.0.1:5555", "ZeroMQ endpoint"),
        ("ZMQ_CONNECT", "tcp://a:1,udp://b:2", "ZeroMQ endpoint"),
        ("LOG_LEVEL", "chatty", "DEBUG"),
        ("DEDUP_WINDOW", "0", "greater than or equal to 1"),
    ],
)
def test_a_wrong_value_names_the_variable_and_the_reason(
    variable: str, value: str, reason: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    message = str(caught.value)
    assert message.startswith(f"invalid setting: {variable}=")
    assert reason in message


def test_the_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_WAIT_S", "3")
    assert load_settings(env_file=None).sqs_wait_s == 3


def test_a_given_mapping_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_WAIT_S", "99")
    assert load_settings({}).sqs_wait_s == 20


def test_every_setting_is_listed_in_env_example() -> None:
    from pathlib import Path

    from shared.settings import Settings

    example = (Path(__file__).parents[2] / ".env.example").read_text()
    listed = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line
    }
    assert {name.upper() for name in Settings.model_fields} <= listed
