"""The ZeroMQ hand-off, worker -> server: where the server binds and workers connect, how long
a worker waits for a confirmation, how the server drops redeliveries, and CURVE."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator

from shared.settings.fields import SEE_ABOVE, CommaList, EmptyIsUnset, comment, is_loopback


class HandoffSettings(BaseModel):
    """How a worker hands each batch to the servers and learns that they emitted it."""

    SECTION: ClassVar[str] = "ZeroMQ hand-off (worker -> server)"

    zmq_bind: str = Field(
        "tcp://127.0.0.1:5555",
        description="Endpoint the server binds (tcp://, ipc:// or inproc://).",
    )
    zmq_connect: CommaList = Field(
        default_factory=list,
        description="Comma-separated endpoints a worker connects to; empty: ZMQ_BIND.",
        json_schema_extra=comment(
            "Comma-separated endpoints a worker connects to; empty: ZMQ_BIND. Every server listed "
            "gets every message while it answers; one that misses ACK_TIMEOUT_S leaves the "
            "delivery set until it answers a ping again, and SQS deletes a message once every "
            "server in the set confirmed it. In cluster mode (REDIS_URL) each batch goes to one "
            "server of the set instead. A host name (tcp://relay-servers:5555) stands for every "
            "address it resolves to, resolved again every ZMQ_RESOLVE_S seconds: servers can come "
            "and go without touching the workers' settings."
        ),
    )
    zmq_resolve_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often a worker re-resolves the host names in ZMQ_CONNECT, seconds.",
        json_schema_extra=SEE_ABOVE,
    )
    ack_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds a worker waits for a server to confirm a batch before returning it "
        "to the queue.",
        json_schema_extra=comment(
            "Seconds a worker waits for a server to confirm a batch before returning it to the "
            "queue. Must be below the visibility timeout (SQS_VISIBILITY_TIMEOUT_S, else the "
            "queue's): a worker refuses to run otherwise."
        ),
    )
    dedup_window_s: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="How long the server remembers emitted MessageIds to drop SQS redeliveries, "
        "seconds.",
        json_schema_extra=comment(
            "How long the server remembers emitted MessageIds to drop SQS redeliveries, seconds. "
            "It is raised to the largest visibility timeout a worker reports (plus "
            "ACK_TIMEOUT_S), and bounded in memory by DEDUP_MAX_IDS (past that, the oldest are "
            "forgotten early and counted)."
        ),
    )
    dedup_max_ids: int = Field(
        1_000_000,
        ge=1,
        le=50_000_000,
        description="Memory bound on remembered MessageIds.",
        json_schema_extra=SEE_ABOVE,
    )
    zmq_curve_server_secret: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        None,
        description="The server's CURVE secret key (python -m server.keys).",
        json_schema_extra=comment(
            "ZeroMQ CURVE (python -m server.keys). Required to bind ZMQ_BIND beyond loopback."
            "\nServer: its secret key and the workers' public keys (comma-separated)."
        ),
    )
    zmq_curve_client_keys: CommaList = Field(
        default_factory=list,
        description="The workers' public CURVE keys the server accepts (comma-separated).",
        json_schema_extra=SEE_ABOVE,
    )
    zmq_curve_server_public: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="Worker: the server's public CURVE key.",
        json_schema_extra=comment(
            "Worker: the server's public key and the worker's own secret key."
        ),
    )
    zmq_curve_client_secret: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        None, description="Worker: its own CURVE secret key.", json_schema_extra=SEE_ABOVE
    )

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

    @property
    def zmq_bind_is_local(self) -> bool:
        transport, _, rest = self.zmq_bind.partition("://")
        if transport != "tcp":
            return True  # ipc:// and inproc:// never leave the machine
        return is_loopback(rest.rsplit(":", 1)[0].strip("[]"))

    @property
    def worker_endpoints(self) -> list[str]:
        """The ZeroMQ endpoints a worker feeds: `ZMQ_CONNECT`, or the server's `ZMQ_BIND`."""
        return list(self.zmq_connect) or [self.zmq_bind]


def _check_zmq_endpoint(value: str) -> None:
    transport, sep, rest = value.partition("://")
    if not sep or transport not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError(f"must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got {value!r}")
