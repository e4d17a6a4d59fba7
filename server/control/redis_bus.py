"""Cluster mode's control bus: a Redis stream, ``<REDIS_PREFIX>:control``, that every server
reads.

Publishing is one ``XADD`` (the stream capped near :data:`MAX_LEN` entries, ``MAXLEN ~``); each
server's reader ``XREAD``\\ s it with ``BLOCK`` from the stream's last entry when it started, so
it handles what is published after that, its own messages included, once each. After a Redis
outage the reader goes on from the last entry it handled (what was published meanwhile is
still handled, unless the cap trimmed it), backing off as the shared feed's reader does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from server.control.bus import ControlUnavailable, Handler, Handlers
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings

logger = logging.getLogger(__name__)

#: The stream is trimmed near this many entries: a server cut off for longer than that many
#: commands misses the oldest (each one is a user's disconnect: rare).
MAX_LEN = 10_000
#: Entries taken per XREAD, and how long one blocks (ms) before looking at the stop flag.
_READ_COUNT = 100
_READ_BLOCK_MS = 1000
#: How long a publish waits for this server's reader to know where the stream stands.
_READY_TIMEOUT_S = 5.0


class RedisControlBus:
    """The control bus of a cluster: one Redis stream, read by every server.

    Usage, in the running event loop::

        bus = RedisControlBus(settings, counters=counters)
        bus.on("disconnect", handler)
        bus.start()                       # the reader: from the stream's tip, now
        await bus.publish("disconnect", body)  # ControlUnavailable if Redis did not take it
        await bus.close()
    """

    def __init__(self, settings: Settings, *, counters: Counters) -> None:
        assert settings.redis_url is not None
        self.key = f"{settings.redis_prefix}:control"
        self._counters = counters
        # A blocked XREAD holds its connection for _READ_BLOCK_MS: the socket timeout is above
        # it, so that a Redis that stopped answering is noticed within a few seconds.
        self._redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=_READ_BLOCK_MS / 1000 + 2,
            socket_connect_timeout=2,
        )
        self._handlers = Handlers()
        self._backoff = ExponentialBackoff(cap=1.0, base=0.05)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # the reader knows where the stream stood at start
        self._closing = False
        self.position: bytes | None = None  # the last entry handled (or the tip at start)
        self.healthy: bool | None = False

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.add(kind, handler)

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name="redis-control")

    async def publish(self, kind: str, body: dict[str, Any]) -> None:
        """Add the message to the stream, for every server's reader (this one's too), once the
        reader started: a message published before would not reach this server."""
        try:
            await asyncio.wait_for(self._ready.wait(), _READY_TIMEOUT_S)
        except TimeoutError:
            raise ControlUnavailable("the control bus's reader has not reached Redis") from None
        try:
            await self._redis.xadd(
                self.key,
                {"k": kind, "b": orjson.dumps(body)},
                maxlen=MAX_LEN,
                approximate=True,
            )
        except RedisError as exc:
            self._failed(exc, "publish")
            raise ControlUnavailable(f"Redis: {exc}") from None

    async def _read(self) -> None:
        failures = 0
        while not self._closing:
            try:
                if self.position is None:
                    self.position = await self._tip()
                    logger.info(
                        "Reading the control bus %s from %s", self.key, self.position.decode()
                    )
                    self._ready.set()
                reply: Any = await self._redis.xread(
                    {self.key: self.position}, count=_READ_COUNT, block=_READ_BLOCK_MS
                )
                self._working()
                failures = 0
                for _name, rows in reply or ():
                    for entry_id, fields in rows:
                        self.position = entry_id
                        await self._dispatch(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                self._failed(exc, "read", first=failures == 0)
                failures += 1
                await asyncio.sleep(self._backoff.compute(failures))  # a retry's back-off

    async def _tip(self) -> bytes:
        try:
            info = await self._redis.xinfo_stream(self.key)
        except RedisError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return b"0-0"
        last = info.get("last-generated-id") or b"0-0"
        return last if isinstance(last, bytes) else str(last).encode()

    async def _dispatch(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            kind = fields[b"k"].decode()
            body = orjson.loads(fields[b"b"])
            if not isinstance(body, dict):
                raise TypeError("not an object")
        except (KeyError, ValueError, TypeError, UnicodeDecodeError):
            logger.warning("Skipping a malformed control entry %r", entry_id)
            return
        await self._handlers.run(kind, body)

    def _working(self) -> None:
        if not self.healthy:
            logger.info("Control bus: Redis is reachable")
        self.healthy = True

    def _failed(self, exc: Exception, what: str, *, first: bool = True) -> None:
        self._counters.inc(c.REDIS_ERRORS)
        if self.healthy or first:  # once per outage, not once per retry
            logger.warning("Control bus: Redis %s failed (%s)", what, exc)
        self.healthy = False

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
