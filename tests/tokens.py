"""JWTs for tests, signed with the secret every test stack's server is given."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt

TEST_SECRET = "test-secret-that-is-at-least-32-characters-long"
#: The relay's default JWT_AUDIENCE: every token for it must name it.
TEST_AUDIENCE = "push-relay"


def token(rooms: list[str] | None = None, *, secret: str = TEST_SECRET, **claims: Any) -> str:
    """A token for `rooms` (default: any) and any namespace; a claim given as None is left out
    (`namespaces=None`: the token may use '/' only)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": "test",
        "aud": TEST_AUDIENCE,
        "iat": now,
        # long enough for a whole suite run: tokens are made when tests are collected
        "exp": now + 6 * 3600,
        "rooms": rooms or ["*"],
        "namespaces": ["*"],
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token with `key` as its HMAC secret: the algorithm-confusion forgery, where
    the key is a public key's PEM. PyJWT refuses to sign HS256 with a PEM key, hence by hand."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)
