"""Who may connect and which rooms they may join: JWTs verified with PyJWT.

A client presents ``auth={"token": "<JWT>"}`` when it connects. The token's rooms claim
(`JWT_ROOMS_CLAIM`, default ``rooms``) lists the rooms it may join: exact names, a prefix
pattern such as ``orders:*``, or ``*`` for any.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from shared.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

DEMO_TOKEN_TTL_S = 3600


class AuthError(Exception):
    """A client's credentials are refused; the message is what the client is told."""


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    room_patterns: tuple[str, ...]

    def may_join(self, room: str) -> bool:
        return any(room_matches(pattern, room) for pattern in self.room_patterns)


ANYONE = Identity("anonymous", ("*",))


def room_matches(pattern: str, room: str) -> bool:
    """``*`` matches any room, ``orders:*`` any room starting with ``orders:``, else exact."""
    if pattern.endswith("*"):
        return room.startswith(pattern[:-1])
    return room == pattern


class Authenticator:
    """Verifies tokens, or lets everyone in with `AUTH=none`.

    >>> auth = Authenticator.from_settings(settings)   # SettingsError if misconfigured
    >>> identity = auth.verify({"token": token})        # AuthError with the reason
    >>> identity.may_join("orders:42")
    """

    def __init__(
        self,
        *,
        enabled: bool,
        key: Any = None,
        signing_key: Any = None,
        algorithms: list[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 30,
        rooms_claim: str = "rooms",
        demo: bool = False,
    ) -> None:
        self.enabled = enabled
        self._key = key
        self._signing_key = signing_key
        self._algorithms = algorithms or []
        self._audience = audience
        self._issuer = issuer
        self._leeway_s = leeway_s
        self._rooms_claim = rooms_claim
        self.demo = demo

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        if settings.auth == "none":
            logger.warning(
                "AUTH=none: every client may connect and join any room; never do this on a "
                "network you do not trust"
            )
            return cls(enabled=False)
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        public_key = _read_key(settings.jwt_public_key) if settings.jwt_public_key else None
        if secret and public_key:
            raise SettingsError(
                "invalid settings: JWT_SECRET and JWT_PUBLIC_KEY are both set; set one"
            )
        demo = settings.demo_on
        if demo and public_key:
            raise SettingsError(
                "invalid settings: DEMO needs JWT_SECRET (or none), not JWT_PUBLIC_KEY: "
                "the server cannot sign with a public key"
            )
        if not secret and not public_key:
            if not demo:
                raise SettingsError(
                    "invalid setting: AUTH=jwt needs JWT_SECRET (HS256) or JWT_PUBLIC_KEY "
                    "(RS256/ES256); set one, or AUTH=none to turn authentication off"
                )
            secret = secrets.token_urlsafe(32)  # this run only: tokens die with the process
        if demo:
            logger.warning(
                "Issuing demo tokens for any room to anyone at /demo/token (DEMO, on by "
                "default with the local emulator); never in production"
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
            signing_key=secret,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_s=settings.jwt_leeway_s,
            rooms_claim=settings.jwt_rooms_claim,
            demo=demo,
        )

    def verify(self, auth: Any) -> Identity:
        """The identity in the connect `auth` payload; AuthError says why not."""
        if not self.enabled:
            return ANYONE
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("authentication required: connect with auth={'token': '<JWT>'}")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token audience is not {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token issuer is not {self._issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm is not one of {self._algorithms}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        patterns = claims.get(self._rooms_claim, [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise AuthError(f"token claim {self._rooms_claim!r} must be a list of strings")
        return Identity(str(claims["sub"]), tuple(patterns))

    def demo_token(self, rooms: list[str] | None = None) -> str:
        """A token for the demo page (only with DEMO)."""
        if not self.demo or self._signing_key is None:
            raise AuthError("demo tokens are off")
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": f"demo-{secrets.token_hex(4)}",
            "iat": now,
            "exp": now + DEMO_TOKEN_TTL_S,
            self._rooms_claim: rooms or ["*"],
        }
        if self._audience:
            claims["aud"] = self._audience
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._signing_key, algorithm="HS256")


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
