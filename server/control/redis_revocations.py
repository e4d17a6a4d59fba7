"""Revoked users in Redis, for cluster mode (server/control/revocations.py says what a
revocation is; this module is imported only with REDIS_URL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.control.bus import ControlUnavailable
from server.control.revocations import issued_before
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings

logger = logging.getLogger(__name__)


class RedisRevocations:
    """Revoked users in Redis, shared by the cluster: ``<prefix>:revoked:<user>`` holds the
    command's time, and expires with the window."""

    def __init__(self, settings: Settings, *, counters: Counters) -> None:
        assert settings.redis_url is not None
        self.window_s = settings.disconnect_revoke_s
        self._prefix = f"{settings.redis_prefix}:revoked:"
        self._counters = counters
        self._redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )

    async def revoke(self, users: Iterable[str], at: float) -> None:
        """Record the command (ControlUnavailable if Redis did not take it: the command is not
        confirmed, and SQS delivers it again)."""
        if self.window_s <= 0:
            return
        ttl_ms = max(1, int((at + self.window_s - time.time()) * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.set(f"{self._prefix}{user}", repr(at), px=ttl_ms)
                await pipe.execute()
        except RedisError as exc:
            self._counters.inc(c.REDIS_ERRORS)
            raise ControlUnavailable(f"Redis: {exc}") from None

    async def revoked(self, user: str, issued_at: float | None) -> bool:
        if self.window_s <= 0:
            return False
        try:
            value = await self._redis.get(f"{self._prefix}{user}")
        except RedisError as exc:
            self._counters.inc(c.REDIS_ERRORS)
            logger.warning(
                "Redis did not answer whether user %r was disconnected (%s): letting the "
                "connect through",
                user,
                exc,
            )
            return False
        if value is None:
            return False
        try:
            at = float(value)
        except ValueError:
            return False
        return issued_before(issued_at, at)

    async def close(self) -> None:
        await self._redis.aclose()
