"""JWTs for tests, signed with the secret every test stack's server is given."""

from __future__ import annotations

import time
from typing import Any

import jwt

TEST_SECRET = "test-secret-that-is-at-least-32-characters-long"


def token(rooms: list[str] | None = None, *, secret: str = TEST_SECRET, **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": "test", "iat": now, "exp": now + 600, "rooms": rooms or ["*"]}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")
