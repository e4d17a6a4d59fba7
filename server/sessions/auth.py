"""Who may connect, to which namespaces, and which rooms they may join: JWTs verified with
PyJWT.

A client presents ``auth={"token": "<JWT>"}`` when it connects. The token must carry
``sub``, ``exp`` and the relay's audience (`JWT_AUDIENCE`, default ``push-relay``), so that
other tokens signed with the same key (an app's own session tokens, say) do not open the
relay. Two claims list patterns, each an exact name, a prefix pattern such as ``orders:*``,
or ``*`` for any:

- the rooms claim (`JWT_ROOMS_CLAIM`, default ``rooms``): the rooms it may join (none
  without the claim);
- the namespaces claim (`JWT_NAMESPACES_CLAIM`, default ``namespaces``): the namespaces it
  may connect to; without the claim, ``/`` only.

The token also says which streams the server enters the connection into at connect, without
its asking (:attr:`Identity.streams`): the user's own, ``relay:user:<sub>``, which nobody can
join, and the rooms the subscribe claim (`JWT_SUBSCRIBE_CLAIM`, default ``subscribe``) lists
by exact name (at most `MAX_MESSAGE_ROOMS`; a malformed claim refuses the connect).

Demo tokens (`DEMO`) are signed with a key made for this run alone, never with a secret from
the environment; they say so in their header (``kid``), which picks that key to check them.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from server.sessions.requests import room_error
from shared.envelope import MAX_ROOMS, USER_STREAM_PREFIX, user_error, user_stream
from shared.settings import RELAY_AUDIENCE, Settings, SettingsError

logger = logging.getLogger(__name__)

DEMO_TOKEN_TTL_S = 3600
#: The ``kid`` header of demo tokens. It only picks the key a token is checked with: a token
#: that claims it is checked with this run's demo key, so it gains nothing by lying.
DEMO_KEY_ID = "push-relay-demo"
#: The ``iss`` of demo tokens, required when checking them: a demo token is known as one in
#: every log line and claim dump, not only by its header.
DEMO_ISSUER = "push-relay-demo"
MAIN_NAMESPACE = "/"
#: A member's public info (the info claim), encoded, is at most this long.
MAX_INFO_BYTES = 1024


class AuthError(Exception):
    """A client's credentials are refused; the message is what the client is told."""


#: What a client whose token a backend's disconnect command revoked is told at connect.
REVOKED = "token revoked: reconnect with a new token"


class RevocationCheck(Protocol):
    """Whether a user's token issued at `issued_at` was revoked by a disconnect command
    (server/control/revocations.py)."""

    async def revoked(self, user: str, issued_at: float | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Identity:
    """What a verified token allows, and until when.

    `expires_at` is the token's ``exp`` (epoch seconds; None with `AUTH=none`); `expired()`
    grants the same `leeway_s` that connect did, so a token accepted at connect is not
    refused by the next join for being a second past ``exp``. `streams` are the rooms the
    server enters the connection into at connect, in the order it resumes them: the user's
    own stream first (none with `AUTH=none`), then the subscribe claim's rooms.
    """

    subject: str
    room_patterns: tuple[str, ...]
    namespace_patterns: tuple[str, ...] = (MAIN_NAMESPACE,)
    expires_at: float | None = None
    leeway_s: float = 0.0
    streams: tuple[str, ...] = ()
    #: The public info other members of a presence room see (the info claim's JSON object,
    #: encoded), or None.
    info: str | None = None
    #: The token's ``iat`` (epoch seconds), or None: a backend's disconnect command refuses
    #: the user's tokens issued before it (server/control/revocations.py).
    issued_at: float | None = None

    @property
    def user(self) -> str | None:
        """The user this connection is (its ``sub``), if it has a user stream: presence and
        online/offline count connections by it."""
        if self.streams and self.streams[0].startswith(USER_STREAM_PREFIX):
            return self.subject
        return None

    def may_join(self, room: str) -> bool:
        """The rooms claim allows it, or the token subscribes it (a client that left one of
        its subscribed rooms may join it again)."""
        return room in self.streams or any(
            pattern_matches(pattern, room) for pattern in self.room_patterns
        )

    def may_connect(self, namespace: str) -> bool:
        return any(pattern_matches(pattern, namespace) for pattern in self.namespace_patterns)

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        # PyJWT's own rule at connect: expired once now >= exp + leeway
        return (time.time() if now is None else now) >= self.expires_at + self.leeway_s


ANYONE = Identity("anonymous", ("*",), ("*",))


def pattern_matches(pattern: str, name: str) -> bool:
    """``*`` matches anything, ``orders:*`` anything starting with ``orders:``, else exact."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


room_matches = pattern_matches  # the older name


class Authenticator:
    """Verifies tokens, or lets everyone in with `AUTH=none`.

    Usage::

        auth = Authenticator.from_settings(settings)          # SettingsError if misconfigured
        identity = auth.verify({"token": token}, namespace="/admin")  # AuthError: why not
        identity.may_join("orders:42"), identity.expired()
    """

    def __init__(
        self,
        *,
        enabled: bool,
        key: Any = None,
        algorithms: list[str] | None = None,
        audience: str = RELAY_AUDIENCE,
        issuer: str | None = None,
        leeway_s: float = 30,
        rooms_claim: str = "rooms",
        namespaces_claim: str = "namespaces",
        subscribe_claim: str = "subscribe",
        info_claim: str = "info",
        max_subscribe: int = MAX_ROOMS,
        demo: bool = False,
        revocations: RevocationCheck | None = None,
    ) -> None:
        self.enabled = enabled
        self._key = key
        self._algorithms = algorithms or []
        self._audience = audience
        self._issuer = issuer
        self._leeway_s = leeway_s
        self._rooms_claim = rooms_claim
        self._namespaces_claim = namespaces_claim
        self._subscribe_claim = subscribe_claim
        self._info_claim = info_claim
        self._max_subscribe = max_subscribe
        self._warned_subject = False
        self._revocations = revocations
        self.demo = demo
        # This run's alone: demo tokens die with the process and open no other server,
        # whatever secret the environment holds.
        self._demo_secret = secrets.token_urlsafe(32) if demo else None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, revocations: RevocationCheck | None = None
    ) -> Authenticator:
        if settings.auth == "none":
            logger.warning(
                "AUTH=none: every client may connect to any namespace and join any room; "
                "never do this on a network you do not trust"
            )
            return cls(enabled=False)
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        public_key = _read_key(settings.jwt_public_key) if settings.jwt_public_key else None
        if secret and public_key:
            raise SettingsError(
                "invalid settings: JWT_SECRET and JWT_PUBLIC_KEY are both set; set one"
            )
        demo = settings.demo_on
        if not secret and not public_key and not demo:
            raise SettingsError(
                "invalid setting: AUTH=jwt needs JWT_SECRET (HS256) or JWT_PUBLIC_KEY "
                "(RS256/ES256); set one, or AUTH=none to turn authentication off"
            )
        if demo:
            logger.warning(
                "Issuing demo tokens for any room to anyone at /demo/token, signed with a key "
                "made for this run (DEMO, on by default only with the embedded emulator's "
                "queue); never in production"
            )
        algorithms = settings.jwt_algorithms or (["RS256", "ES256"] if public_key else ["HS256"])
        if public_key and any(a.startswith("HS") for a in algorithms):
            raise SettingsError(
                "invalid setting: JWT_ALGORITHMS has an HS* algorithm with JWT_PUBLIC_KEY; "
                "that would let anyone sign with the public key"
            )
        return cls(
            enabled=True,
            key=public_key or secret,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_s=settings.jwt_leeway_s,
            rooms_claim=settings.jwt_rooms_claim,
            namespaces_claim=settings.jwt_namespaces_claim,
            subscribe_claim=settings.jwt_subscribe_claim,
            info_claim=settings.presence_info_claim,
            max_subscribe=settings.max_message_rooms,
            demo=demo,
            revocations=revocations,
        )

    def verify(self, auth: Any, *, namespace: str = MAIN_NAMESPACE) -> Identity:
        """The identity in the connect `auth` payload, if it may use `namespace`; AuthError
        says why not."""
        if not self.enabled:
            return ANYONE
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("authentication required: connect with auth={'token': '<JWT>'}")
        claims = self._decode(token)
        subject = str(claims["sub"])
        identity = Identity(
            subject,
            self._patterns(claims, self._rooms_claim, default=()),
            self._patterns(claims, self._namespaces_claim, default=(MAIN_NAMESPACE,)),
            float(claims["exp"]),
            self._leeway_s,
            self._own_stream(subject) + self._subscribed(claims),
            self._info(claims),
            issued_at=_issued_at(claims),
        )
        if not identity.may_connect(namespace):
            why = (
                f"its {self._namespaces_claim!r} claim does not list it"
                if self._namespaces_claim in claims
                else f"a token without a {self._namespaces_claim!r} claim may use "
                f"{MAIN_NAMESPACE!r} only"
            )
            raise AuthError(f"not allowed to connect to namespace {namespace!r}: {why}")
        return identity

    async def revoked(self, identity: Identity) -> str | None:
        """Why the connect is refused because a backend disconnected the user since its token
        was issued (:data:`REVOKED`), or None."""
        if self._revocations is None or not self.enabled:
            return None
        if await self._revocations.revoked(identity.subject, identity.issued_at):
            return REVOKED
        return None

    def _decode(self, token: str) -> dict[str, Any]:
        key, algorithms, issuer = self._key, self._algorithms, self._issuer
        if self._demo_secret is not None:
            try:
                key_id = jwt.get_unverified_header(token).get("kid")
            except jwt.PyJWTError as exc:
                raise AuthError(f"invalid token: {exc}") from None
            if key_id == DEMO_KEY_ID:
                key, algorithms, issuer = self._demo_secret, ["HS256"], DEMO_ISSUER
        if key is None:
            raise AuthError(
                "token signature does not verify: this server only accepts its own demo tokens"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            hint = f"; this relay requires aud={self._audience!r}" if exc.claim == "aud" else ""
            raise AuthError(f"token has no {exc.claim!r} claim{hint}") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm is not one of {algorithms}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        return claims

    def _own_stream(self, subject: str) -> tuple[str, ...]:
        """The user's stream, if its ``sub`` can name one (a user id an envelope can target)."""
        reason = user_error(subject)
        if reason is None:
            return (user_stream(subject),)
        if not self._warned_subject:  # once: it is the token issuer's habit, not one client's
            self._warned_subject = True
            logger.warning(
                "A token's 'sub' cannot name a user stream (%s): such connections get no user "
                "stream, and no envelope can target them by user",
                reason,
            )
        return ()

    def _subscribed(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """The rooms the subscribe claim lists, checked as a join's room is."""
        claim = self._subscribe_claim
        if claim not in claims:
            return ()
        rooms = claims[claim]
        if not isinstance(rooms, list) or not all(isinstance(room, str) for room in rooms):
            raise AuthError(f"token claim {claim!r} must be a list of room names")
        if len(rooms) > self._max_subscribe:
            raise AuthError(
                f"token claim {claim!r} lists {len(rooms)} rooms, over "
                f"MAX_MESSAGE_ROOMS={self._max_subscribe}"
            )
        for room in rooms:
            if (reason := room_error(room)) is not None:
                raise AuthError(f"token claim {claim!r} has room {room!r:.80}: {reason}")
        return tuple(dict.fromkeys(rooms))

    def _info(self, claims: dict[str, Any]) -> str | None:
        """The info claim's object, encoded: what other members of a presence room see."""
        claim = self._info_claim
        if claim not in claims:
            return None
        info = claims[claim]
        text = json.dumps(info, separators=(",", ":"), ensure_ascii=False)
        if not isinstance(info, dict) or len(text.encode()) > MAX_INFO_BYTES:
            raise AuthError(
                f"token claim {claim!r} must be a JSON object of at most {MAX_INFO_BYTES} bytes"
            )
        return text

    @staticmethod
    def _patterns(
        claims: dict[str, Any], claim: str, *, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        if claim not in claims:
            return default
        patterns = claims[claim]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise AuthError(f"token claim {claim!r} must be a list of strings")
        return tuple(patterns)

    def demo_token(self, rooms: list[str] | None = None) -> str:
        """A token for the demo page (only with DEMO): any room (or `rooms`), namespace '/'."""
        if self._demo_secret is None:
            raise AuthError("demo tokens are off")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": f"demo-{secrets.token_hex(4)}",
            "iss": DEMO_ISSUER,
            "aud": self._audience,
            "iat": now,
            "exp": now + DEMO_TOKEN_TTL_S,
            self._rooms_claim: rooms or ["*"],
            self._namespaces_claim: [MAIN_NAMESPACE],
        }
        return jwt.encode(
            claims, self._demo_secret, algorithm="HS256", headers={"kid": DEMO_KEY_ID}
        )


def _issued_at(claims: dict[str, Any]) -> float | None:
    """The ``iat`` claim (PyJWT checked that it is a number when present), or None."""
    value = claims.get("iat")
    return float(value) if isinstance(value, int | float) else None


def _read_key(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise SettingsError(
            "invalid setting: JWT_PUBLIC_KEY is neither a PEM key nor a readable file: "
            f"{value!r:.80}"
        )
    return path.read_text()
