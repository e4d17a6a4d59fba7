from __future__ import annotations

import pytest

from shared.settings import EMBEDDED_QUEUE_URL, Settings, SettingsError, load_settings


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
        ("DEDUP_WINDOW_S", "0", "greater than or equal to 1"),
        ("DEFAULT_EVENT", "connect", "reserved"),
        ("DEFAULT_EVENT", "disconnect", "reserved"),
        ("DEFAULT_EVENT", "relay:recovery", "reserved"),
        ("SQS_VISIBILITY_TIMEOUT_S", "0", "visible again at once"),
        ("SQS_VISIBILITY_TIMEOUT_S", "5", "must be below SQS_VISIBILITY_TIMEOUT_S"),
        ("JWT_AUDIENCE", "", "must not be empty"),
        ("CLIENT_QUEUE_MAX_BYTES", "1048576", "must be above RESUME_MAX_BYTES"),
        ("CLIENT_QUEUE_MAX_PACKETS", "1", "greater than or equal to 10"),
        ("GC_YOUNG_THRESHOLD", "10", "greater than or equal to 100"),
    ],
)
def test_a_wrong_value_names_the_variable_and_the_reason(
    variable: str, value: str, reason: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    message = str(caught.value)
    # a rule between two settings names the one that depends on the other
    named = "ACK_TIMEOUT_S" if reason.startswith("must be below SQS_") else variable
    assert message.startswith(f"invalid setting: {named}=")
    assert reason in message


def test_ack_timeout_must_be_below_the_visibility_timeout_when_that_is_set() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"SQS_VISIBILITY_TIMEOUT_S": "30", "ACK_TIMEOUT_S": "30"})
    assert str(caught.value).startswith("invalid setting: ACK_TIMEOUT_S='30': must be below")
    settings = load_settings({"SQS_VISIBILITY_TIMEOUT_S": "30", "ACK_TIMEOUT_S": "29.5"})
    assert settings.ack_timeout_s == 29.5
    assert load_settings({"ACK_TIMEOUT_S": "300"}).sqs_visibility_timeout_s is None


def test_a_non_reserved_default_event_is_fine() -> None:
    assert load_settings({"DEFAULT_EVENT": "item_added"}).default_event == "item_added"


def test_demo_is_on_by_default_only_with_the_embedded_emulators_queue() -> None:
    assert load_settings({}).demo_on
    # a LocalStack sidecar or any other loopback queue may sit in front of real data
    for url in (
        "http://localhost:4566/000000000000/orders",
        "http://127.0.0.1:9324/123456789012/other-queue",
        "http://127.0.0.1:9325/123456789012/push-relay",
    ):
        assert not load_settings({"SQS_QUEUE_URL": url}).demo_on, url
    assert not load_settings({"DEMO": "0"}).demo_on


@pytest.mark.parametrize("value", ["1", "true", "True"])
def test_demo_can_be_asked_for_anywhere(value: str) -> None:
    aws = "https://sqs.eu-west-1.amazonaws.com/123/orders"
    assert load_settings({"SQS_QUEUE_URL": aws, "DEMO": value}).demo_on


def test_tokens_must_name_the_relay_as_audience_by_default() -> None:
    assert load_settings({}).jwt_audience == "push-relay"
    assert load_settings({"JWT_AUDIENCE": "relay.example"}).jwt_audience == "relay.example"


def test_the_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_WAIT_S", "3")
    assert load_settings(env_file=None).sqs_wait_s == 3


def test_a_given_mapping_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_WAIT_S", "99")
    assert load_settings({}).sqs_wait_s == 20


#: Every environment variable the relay reads. Deployments set these names: a rename is a
#: breaking change, made on purpose here, never as a side effect of moving a field.
VARIABLES = {
    "ACK_TIMEOUT_S", "AUTH", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_SQS", "CLIENT_EVENTS",
    "CLIENT_EVENT_BURST", "CLIENT_EVENT_MAX_BYTES", "CLIENT_EVENT_RATE", "CLIENT_PING_INTERVAL_S",
    "CLIENT_PING_TIMEOUT_S", "CLIENT_QUEUE_MAX_BYTES", "CLIENT_QUEUE_MAX_PACKETS",
    "CLIENT_WRITE_TIMEOUT_S", "CONSUMER", "CORS_ALLOWED_ORIGINS", "DEDUP_MAX_IDS", "DEDUP_WINDOW_S",
    "DEFAULT_EVENT", "DEMO", "GC_YOUNG_THRESHOLD", "HOST", "JWT_ALGORITHMS", "JWT_AUDIENCE",
    "JWT_ISSUER", "JWT_LEEWAY_S", "JWT_NAMESPACES_CLAIM", "JWT_PUBLIC_KEY", "JWT_ROOMS_CLAIM",
    "JWT_SECRET", "JWT_SUBSCRIBE_CLAIM", "LOG_FORMAT", "LOG_LEVEL", "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_ROOMS", "METRICS_PORT", "PORT", "REDIS_FEED_MAX_EVENTS", "REDIS_PREFIX",
    "REDIS_STREAM_TTL_S", "REDIS_URL", "REPLAY_MAX_BYTES", "REPLAY_MAX_EVENTS", "REPLAY_WINDOW_S",
    "RESUME_MAX_BYTES", "RESUME_MAX_BYTES_PER_CONNECTION", "SHUTDOWN_TIMEOUT_S", "SQS_BATCH_SIZE",
    "SQS_DLQ_URL", "SQS_EMULATOR_LISTEN", "SQS_MAX_RECEIVE_COUNT", "SQS_QUEUE_URL",
    "SQS_VISIBILITY_TIMEOUT_S", "SQS_WAIT_S", "WORKER_THREADS", "ZMQ_BIND", "ZMQ_CONNECT",
    "ZMQ_CURVE_CLIENT_KEYS", "ZMQ_CURVE_CLIENT_SECRET", "ZMQ_CURVE_SERVER_PUBLIC",
    "ZMQ_CURVE_SERVER_SECRET", "ZMQ_RESOLVE_S", "DISCONNECT_REVOKE_S", "PRESENCE_ROOMS",
    "PRESENCE_GRACE_S", "PRESENCE_LEASE_S", "PRESENCE_INFO_CLAIM", "PRESENCE_MAX_MEMBERS",
    "PRESENCE_PAGE_SIZE", "PRESENCE_COALESCE_S", "PRESENCE_EVENTS_QUEUE_URL",
    "PRESENCE_OUTBOX_MAX", "PRESENCE_STATE_FILE", "STATE_ROOMS", "STATE_MAX_KEYS",
    "STATE_MAX_BYTES", "BACKEND_API_KEY", "BACKEND_API_RATE", "BACKEND_API_MAX_EVENTS",
    "ADMIN_UI", "ADMIN_USERNAME", "ADMIN_PASSWORD", "ADMIN_NAMESPACE", "ADMIN_MODE",
    "CLIENT_CONNECT_BURST", "CLIENT_CONNECT_RATE", "CLIENT_HEADER_TIMEOUT_S",
    "CLIENT_MAX_CONNECTIONS", "CLIENT_MESSAGE_MAX_BYTES", "OTEL_TRACES_EXPORTER",
}  # fmt: skip


def test_the_environment_variable_names_are_the_field_names_and_unchanged() -> None:
    assert {name.upper() for name in Settings.model_fields} == VARIABLES


def test_every_concerns_variables_are_read_flat_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one variable of each concern's module in the process environment
    given = {
        "SQS_WAIT_S": "3",  # sqs.py
        "ZMQ_RESOLVE_S": "7",  # handoff.py
        "REDIS_PREFIX": "other",  # cluster.py
        "CLIENT_EVENTS": "a, b",  # clients.py
        "JWT_LEEWAY_S": "5",  # auth.py
        "WORKER_THREADS": "4",  # process.py
    }
    for variable, value in given.items():
        monkeypatch.setenv(variable, value)

    # When the settings are read from it
    settings = load_settings(env_file=None)

    # Then each is a flat attribute of the one Settings object, parsed by its own field
    assert isinstance(settings, Settings)
    assert (settings.sqs_wait_s, settings.zmq_resolve_s, settings.redis_prefix) == (3, 7.0, "other")
    assert (settings.client_events, settings.jwt_leeway_s, settings.worker_threads) == (
        ["a", "b"],
        5.0,
        4,
    )


def test_every_setting_two_settings_refuse_is_named_in_one_message() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"SQS_VISIBILITY_TIMEOUT_S": "5", "RESUME_MAX_BYTES": "8388608"})
    message = str(caught.value)
    assert message.startswith("invalid settings: ACK_TIMEOUT_S=5.0: must be below")
    assert "; CLIENT_QUEUE_MAX_BYTES=4194304: must be above RESUME_MAX_BYTES (8388608)" in message


def test_a_check_between_settings_waits_until_each_setting_is_valid_on_its_own() -> None:
    # Given a visibility timeout that refuses the default ACK_TIMEOUT_S, and a wrong SQS_WAIT_S
    with pytest.raises(SettingsError) as caught:
        load_settings({"SQS_VISIBILITY_TIMEOUT_S": "5", "SQS_WAIT_S": "30"})
    # Then only the wrong value is reported; the check between two settings comes once it is fixed
    assert str(caught.value).startswith("invalid setting: SQS_WAIT_S='30':")
    assert "ACK_TIMEOUT_S" not in str(caught.value)
    with pytest.raises(SettingsError, match=r"^invalid setting: ACK_TIMEOUT_S=5\.0: must be below"):
        load_settings({"SQS_VISIBILITY_TIMEOUT_S": "5", "SQS_WAIT_S": "3"})
