"""Who may connect: client authentication (JWT), the demo endpoints, and browser origins."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from shared.settings.fields import SEE_ABOVE, CommaList, EmptyIsUnset, comment

#: The default `aud` every client token must carry, so that other tokens signed with the same
#: key (an app's own session tokens, say) do not open the relay.
RELAY_AUDIENCE = "push-relay"


class AuthSettings(BaseModel):
    """Client authentication on connect, and what may open the relay besides a token."""

    SECTION: ClassVar[str] = "Security"

    auth: Literal["jwt", "none"] = Field(
        "jwt",
        description="Client authentication on connect: jwt (a token in the Socket.IO auth "
        "payload) or none.",
    )
    jwt_secret: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        None,
        description="HS256 secret, at least 32 characters.",
        json_schema_extra=comment(
            "HS256 secret (32+ characters), or JWT_PUBLIC_KEY: an RS256/ES256 public key (PEM "
            "text or a path to a PEM file). One of them is required with AUTH=jwt, except with "
            "DEMO on (then only demo tokens open the relay)."
        ),
    )
    jwt_public_key: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="PEM public key (RS256/ES256), or a path to a PEM file.",
        json_schema_extra=SEE_ABOVE,
    )
    jwt_algorithms: CommaList = Field(
        default_factory=list,
        description="Accepted algorithms; empty: HS256 with JWT_SECRET, RS256,ES256 with "
        "JWT_PUBLIC_KEY.",
    )
    jwt_audience: str = Field(
        RELAY_AUDIENCE,
        description="The 'aud' claim every token must carry (never empty).",
        json_schema_extra=comment(
            "The 'aud' claim every token must carry, so that other tokens signed with the same "
            "key (your app's own session tokens, say) do not open the relay. It cannot be turned "
            "off; set it to the audience your token issuer already puts in the relay's tokens."
        ),
    )
    jwt_issuer: Annotated[str | None, EmptyIsUnset] = Field(
        None, description="Required 'iss' claim, when set."
    )
    jwt_leeway_s: float = Field(
        30.0, ge=0, le=600, description="Clock skew allowed on exp/nbf/iat, seconds."
    )
    jwt_rooms_claim: str = Field(
        "rooms",
        min_length=1,
        description="The claim that lists the rooms a client may join: exact names, prefix* "
        "patterns, or *.",
    )
    jwt_subscribe_claim: str = Field(
        "subscribe",
        min_length=1,
        description="The claim that lists rooms the server enters a client into at connect, "
        "without its asking (exact names, at most MAX_MESSAGE_ROOMS; resumed like the user's "
        "own stream).",
    )
    jwt_namespaces_claim: str = Field(
        "namespaces",
        min_length=1,
        description="The claim that lists the namespaces a client may connect to (patterns like "
        "rooms: /admin, /orders*, *); a token without it may use '/' only.",
    )
    disconnect_revoke_s: float = Field(
        3600.0,
        ge=0,
        description="After a backend's disconnect command (relay:disconnect), refuse for this "
        "long the user's tokens issued before it; 0: off.",
        json_schema_extra=comment(
            "After a backend's disconnect command (relay:disconnect, docs/producing.md), refuse "
            "for this many seconds every connect of its users with a token issued before the "
            "command (an 'iat' before it, or none), so that a banned user's old token cannot "
            "simply reconnect; a token issued later connects. Make it at least your tokens' "
            "lifetime for a ban to hold. Kept in Redis in cluster mode (if Redis does not "
            "answer, connects are let through), in memory otherwise (the newest 100,000 users). "
            "0 turns it off."
        ),
    )
    demo: Annotated[bool | None, EmptyIsUnset] = Field(
        None,
        description="Serve /demo/token and /demo/send; unset: only with the embedded emulator's "
        "queue.",
        json_schema_extra=comment(
            "Demo endpoints for the demo page: /demo/token (a token for any room of '/', to "
            "anyone) and /demo/send (puts a test event on the queue). Unset: on only when "
            "SQS_QUEUE_URL is exactly the embedded emulator's queue above (not any loopback URL: "
            "a LocalStack sidecar stays off); 1 or true turns it on anywhere. Demo tokens are "
            "signed with a random key made at each start, never with JWT_SECRET, and die with "
            "the process. Never in production."
        ),
    )
    cors_allowed_origins: CommaList = Field(
        default_factory=list,
        description="Browser origins allowed to connect (comma-separated, or *); empty: same "
        "origin only.",
    )

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
