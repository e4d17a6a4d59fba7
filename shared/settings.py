"""One typed settings object for every process, read from the environment and `.env`.

Build it once in a `__main__` with :func:`load_settings` and pass it down; nothing reads the
environment at import time. Every field is documented with its default in `.env.example`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.envelope import RESERVED_EVENTS, RESERVED_PREFIX, SQS_MAX_BYTES

#: The queue the embedded emulator (`python -m sqs_emulator`) creates and serves. Port 9324 is
#: the usual local-SQS port; 123456789012 is the account ID moto puts in every queue URL.
EMBEDDED_QUEUE_URL = "http://127.0.0.1:9324/123456789012/push-relay"

#: The default `aud` every client token must carry, so that other tokens signed with the same
#: key (an app's own session tokens, say) do not open the relay.
RELAY_AUDIENCE = "push-relay"

_AWS_HOST = re.compile(
    r"^(?:sqs\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com"
)


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable and says why."""


class Settings(BaseSettings):
    """Every setting of the relay. Field names are the environment variables, upper-cased.

    >>> settings = load_settings({"SQS_WAIT_S": "1"})
    >>> settings.sqs_wait_s
    1
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- SQS (boto3's own variables where boto3 has one) -------------------------------------
    sqs_queue_url: str = Field(
        EMBEDDED_QUEUE_URL, description="URL of the queue to consume (the embedded one by default)"
    )
    aws_endpoint_url_sqs: str | None = Field(
        None, description="SQS endpoint; unset for real AWS (a loopback queue URL implies it)"
    )
    aws_default_region: str | None = Field(
        None, description="AWS region; unset: taken from the queue URL, else us-east-1"
    )
    sqs_wait_s: int = Field(20, ge=0, le=20, description="ReceiveMessage long-poll wait")
    sqs_batch_size: int = Field(10, ge=1, le=10, description="messages per ReceiveMessage")
    sqs_visibility_timeout_s: int | None = Field(
        None, ge=0, le=43200, description="visibility timeout per receive; unset: the queue's"
    )
    sqs_dlq_url: str | None = Field(
        None, description="dead-letter queue; unset: the one in the queue's redrive policy"
    )
    max_message_bytes: int = Field(
        262_144, ge=1, le=SQS_MAX_BYTES, description="larger bodies are dead-lettered"
    )
    sqs_max_receive_count: int = Field(
        5, ge=1, le=1000, description="emulator only: receives before a message goes to the DLQ"
    )

    # --- ZeroMQ hand-off ---------------------------------------------------------------------
    zmq_bind: str = Field("tcp://127.0.0.1:5555", description="endpoint the server binds")
    zmq_connect: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="endpoints a worker connects to; empty: [ZMQ_BIND]"
    )
    ack_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        # checked against SQS_VISIBILITY_TIMEOUT_S even when left at its default
        validate_default=True,
        description="how long a worker waits for a server to confirm a batch",
    )

    zmq_resolve_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="how often a worker re-resolves the host names in ZMQ_CONNECT",
    )

    # --- Cluster mode (README, "Running several servers") ------------------------------------
    redis_url: str | None = Field(
        None,
        description="Redis Streams as the servers' shared bus and history; unset: one server, "
        "history in memory",
    )
    redis_prefix: str = Field(
        "relay", min_length=1, max_length=64, description="prefix of every Redis key the relay uses"
    )
    redis_feed_max_events: int = Field(
        10_000,
        ge=100,
        le=100_000_000,
        description="messages the shared feed (and history) keeps in all, for every server",
    )
    redis_stream_ttl_s: float = Field(
        86_400.0,
        ge=1,
        le=366 * 86_400,
        description="how long Redis keeps an idle stream's position (at least REPLAY_WINDOW_S)",
    )

    # --- Socket.IO server --------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="interface the HTTP server listens on")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port (honcho sets PORT)")
    default_event: str = Field(
        "message", min_length=1, description="event name for bodies that are not an envelope"
    )
    max_message_rooms: int = Field(
        100, ge=1, le=10_000, description="rooms one message may name; more: dead-lettered"
    )
    dedup_window_s: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="how long emitted MessageIds are remembered, at least the visibility timeout",
    )
    dedup_max_ids: int = Field(
        1_000_000, ge=1, le=50_000_000, description="memory bound on remembered MessageIds"
    )
    replay_window_s: float = Field(
        120.0, ge=0, le=86_400, description="how long emitted events stay replayable"
    )
    replay_max_events: int = Field(
        1000, ge=0, le=1_000_000, description="replayable events kept per stream"
    )
    replay_max_bytes: int = Field(
        16 * 1024 * 1024, ge=0, le=4 * 1024**3, description="replayable bytes kept in all"
    )
    resume_max_bytes: int = Field(
        1024 * 1024, ge=0, le=1024**3, description="bytes one resume request may replay"
    )
    resume_max_bytes_per_connection: int = Field(
        4 * 1024 * 1024, ge=0, le=4 * 1024**3, description="bytes replayed to one connection"
    )
    client_queue_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="a client's outgoing queue: past this it is disconnected as too slow",
    )
    client_queue_max_packets: int = Field(
        10_000,
        ge=10,
        le=10_000_000,
        description="a client's outgoing queue, in packets: past this it is disconnected",
    )
    client_write_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a WebSocket client that takes no data this long has its connection aborted",
    )
    # Whole seconds: engine.io tells the client its interval in whole seconds' worth of ms.
    client_ping_interval_s: int = Field(
        25,
        ge=1,
        le=3600,
        description="seconds between the server's engine.io PINGs to each client (Socket.IO: 25)",
    )
    client_ping_timeout_s: int = Field(
        20,
        ge=1,
        le=3600,
        description="a client that leaves a PING unanswered this long is cut off (Socket.IO: 20)",
    )

    # --- Security -----------------------------------------------------------------------------
    auth: Literal["jwt", "none"] = Field("jwt", description="client authentication on connect")
    jwt_secret: SecretStr | None = Field(None, description="HS256 secret, at least 32 chars")
    jwt_public_key: str | None = Field(
        None, description="PEM public key (RS256/ES256), or a path to a PEM file"
    )
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="accepted algorithms; empty: HS256, or RS256,ES256"
    )
    jwt_audience: str = Field(
        RELAY_AUDIENCE, description="the 'aud' claim every token must carry (never empty)"
    )
    jwt_issuer: str | None = Field(None, description="required 'iss' claim, if set")
    jwt_leeway_s: float = Field(30.0, ge=0, le=600, description="clock skew allowed on exp/nbf")
    jwt_rooms_claim: str = Field("rooms", min_length=1, description="claim listing room patterns")
    jwt_namespaces_claim: str = Field(
        "namespaces", min_length=1, description="claim listing namespace patterns; none: '/'"
    )
    demo: bool | None = Field(
        None,
        description="serve /demo/token and /demo/send; unset: only with the embedded emulator",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="worker: serve /metrics on this port (honcho: $PORT)"
    )
    log_format: Literal["text", "json"] = Field("text", description="text, or one JSON per line")
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="browser origins allowed; empty: same origin only"
    )
    client_events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["item_removed"], description="client events relayed to others"
    )
    client_event_max_bytes: int = Field(16_384, ge=1, le=1_048_576)
    client_event_rate: float = Field(10.0, gt=0, le=10_000, description="per connection, per s")
    client_event_burst: int = Field(20, ge=1, le=100_000)
    zmq_curve_server_secret: SecretStr | None = Field(None, description="server's CURVE secret")
    zmq_curve_server_public: str | None = Field(None, description="server's CURVE public key")
    zmq_curve_client_secret: SecretStr | None = Field(None, description="worker's CURVE secret")
    zmq_curve_client_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="workers' public keys the server accepts"
    )

    # --- Consumer placement -------------------------------------------------------------------
    consumer: Literal["process", "thread"] = Field(
        "process", description="process: python -m worker; thread: the same code in the server"
    )
    worker_threads: int = Field(2, ge=1, le=64, description="CONSUMER=thread: how many threads")

    # --- Processes ---------------------------------------------------------------------------
    shutdown_timeout_s: float = Field(
        4.0, gt=0, le=60, description="graceful-stop budget; honcho SIGKILLs after 5 s"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    gc_young_threshold: int = Field(
        10_000,
        ge=100,
        le=10_000_000,
        description="server: new objects between the collector's young passes (Python: 700)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "aws_endpoint_url_sqs",
        "aws_default_region",
        "redis_url",
        "sqs_dlq_url",
        "jwt_secret",
        "jwt_public_key",
        "jwt_issuer",
        "demo",
        "metrics_port",
        "zmq_curve_server_secret",
        "zmq_curve_server_public",
        "zmq_curve_client_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "zmq_connect",
        "jwt_algorithms",
        "cors_allowed_origins",
        "client_events",
        "zmq_curve_client_keys",
        mode="before",
    )
    @classmethod
    def _split_comma_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sqs_queue_url", "aws_endpoint_url_sqs", "sqs_dlq_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("sqs_queue_url")
    @classmethod
    def _queue_path(cls, value: str) -> str:
        if not urlsplit(value).path.strip("/"):
            raise ValueError(f"must name a queue (…/ACCOUNT_ID/QUEUE_NAME), got {value!r}")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (RFC 7518 wants 256 bits for HS256)")
        return value

    @field_validator("jwt_audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"must not be empty: every token must carry it as its 'aud' claim (default "
                f"{RELAY_AUDIENCE!r}), so that other tokens signed with the same key (an app's "
                "session tokens, say) do not open the relay"
            )
        return value

    @field_validator("default_event")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_EVENTS or value.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"is a reserved event name (Socket.IO's own, or the relay's {RESERVED_PREFIX}*);"
                " clients would take every such message for a Socket.IO or relay event"
            )
        return value

    @field_validator("client_queue_max_bytes")
    @classmethod
    def _queue_holds_a_resume(cls, value: int, info: ValidationInfo) -> int:
        # resume_max_bytes is declared (so validated) before client_queue_max_bytes
        resume = info.data.get("resume_max_bytes")
        if resume is not None and value <= resume:
            raise ValueError(
                f"must be above RESUME_MAX_BYTES ({resume}): a resume lands in the client's "
                "outgoing queue at once, and would disconnect every client that resumes"
            )
        return value

    @field_validator("sqs_visibility_timeout_s")
    @classmethod
    def _visibility(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError(
                "0 would make every received message visible again at once, so other "
                "receives get it while it is in flight; unset it to use the queue's own"
            )
        return value

    @field_validator("ack_timeout_s")
    @classmethod
    def _ack_within_visibility(cls, value: float, info: ValidationInfo) -> float:
        # sqs_visibility_timeout_s is declared (so validated) before ack_timeout_s
        visibility = info.data.get("sqs_visibility_timeout_s")
        if visibility is not None and value >= visibility:
            raise ValueError(
                f"must be below SQS_VISIBILITY_TIMEOUT_S ({visibility}): a batch still waiting "
                "that long for its confirmation is visible on the queue again and received twice"
            )
        return value

    @field_validator(
        "zmq_curve_server_secret",
        "zmq_curve_client_secret",
        "zmq_curve_server_public",
    )
    @classmethod
    def _z85_key(cls, value: SecretStr | str | None) -> SecretStr | str | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and len(text) != 40:
            raise ValueError("must be a 40-character Z85 CURVE key (python -m server.keys)")
        return value

    @field_validator("zmq_curve_client_keys")
    @classmethod
    def _z85_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if len(key) != 40:
                raise ValueError(f"{key!r:.20} is not a 40-character Z85 CURVE public key")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {value!r:.80}")
        return value

    @field_validator("zmq_bind")
    @classmethod
    def _zmq_endpoint(cls, value: str) -> str:
        _check_zmq_endpoint(value)
        return value

    @field_validator("zmq_connect")
    @classmethod
    def _zmq_endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            _check_zmq_endpoint(endpoint)
        return value

    # --- Derived values ----------------------------------------------------------------------
    @property
    def demo_on(self) -> bool:
        """The demo endpoints are served when asked for (`DEMO`), or by default with the
        embedded emulator's own queue; never merely because the queue is on loopback (a
        LocalStack sidecar or a tunnel may hold real data)."""
        return self.sqs_queue_url == EMBEDDED_QUEUE_URL if self.demo is None else self.demo

    @property
    def cluster(self) -> bool:
        """Cluster mode: several servers share Redis (REDIS_URL); a worker hands each batch to
        one of them. Otherwise every server a worker feeds gets every batch."""
        return self.redis_url is not None

    @property
    def zmq_bind_is_local(self) -> bool:
        transport, _, rest = self.zmq_bind.partition("://")
        if transport != "tcp":
            return True  # ipc:// and inproc:// never leave the machine
        return _is_loopback(rest.rsplit(":", 1)[0].strip("[]"))

    @property
    def worker_endpoints(self) -> list[str]:
        """The ZeroMQ endpoints a worker feeds: `ZMQ_CONNECT`, or the server's `ZMQ_BIND`."""
        return list(self.zmq_connect) or [self.zmq_bind]

    @property
    def queue_name(self) -> str:
        return urlsplit(self.sqs_queue_url).path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def sqs_endpoint_url(self) -> str | None:
        """The endpoint boto3 should use; None lets boto3 resolve the AWS one.

        A queue URL on a loopback address can only be served by an emulator, so it names the
        endpoint too; that is what makes a bare `honcho start` work with no settings at all.
        """
        if self.aws_endpoint_url_sqs:
            return self.aws_endpoint_url_sqs
        if self.queue_is_local:
            parts = urlsplit(self.sqs_queue_url)
            return f"{parts.scheme}://{parts.netloc}"
        return None

    @property
    def queue_is_local(self) -> bool:
        return _is_loopback(urlsplit(self.sqs_queue_url).hostname or "")

    @property
    def region(self) -> str:
        if self.aws_default_region:
            return self.aws_default_region
        match = _AWS_HOST.match(urlsplit(self.sqs_queue_url).hostname or "")
        return match.group("region") if match else "us-east-1"


class _OnlyGiven(Settings):
    """Settings built from explicit values alone: no process environment, no `.env`."""

    @classmethod
    def settings_customise_sources(  # type: ignore[no-untyped-def, override]
        cls, settings_cls, init_settings, **_sources
    ):
        return (init_settings,)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_zmq_endpoint(value: str) -> None:
    transport, sep, rest = value.partition("://")
    if not sep or transport not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError(f"must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got {value!r}")


def load_settings(
    environ: dict[str, str] | None = None, *, env_file: str | None = ".env"
) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` naming the bad variable.

    With `environ` given, only that mapping is read (tests); otherwise the process
    environment and `env_file` are.
    """
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]
        lowered = {key.lower(): value for key, value in environ.items()}
        known = {name: lowered[name] for name in Settings.model_fields if name in lowered}
        return _OnlyGiven(**known)  # type: ignore[arg-type]  # strings, validated by pydantic
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        if "secret" in field:
            shown = ""  # never echo a secret into a log
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{field.upper()}{shown}: {message}")
    return "invalid setting" + ("s" if len(lines) > 1 else "") + ": " + "; ".join(lines)
