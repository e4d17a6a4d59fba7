"""Cluster mode's history: shared by every server in Redis, emitted by each from the feed.

The :class:`~server.history.base.History` of servers that share REDIS_URL. A batch is
appended to Redis (:class:`~server.history.cluster.RedisBus`, which de-duplicates and numbers
it cluster-wide); every server's feed reader then hands each event here, which keeps it in
this server's replay buffer and emits it to this server's clients. A resume first gets what
the shared history holds that this server's feed reader already handled, then what the
reader handled since, from the buffer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from server.history.base import CatchUp, HistoryUnavailable, Observe, OnGap, Publish, Seen
from server.history.cluster import RedisBus
from server.history.replay import Entry, ReplayBuffer, Stream
from server.payload import ENTRY_OVERHEAD_BYTES
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings
from shared.wire import Delivery

logger = logging.getLogger(__name__)


class RedisHistory:
    """The history of a server in a cluster.

    Usage::

        history = RedisHistory(settings, replay=replay, counters=counters)
        history.start(publish, on_gap)   # the feed reader; on_gap when it missed events
        confirmed = await history.append(deliveries, seen)  # none while Redis is away
        await history.close()
    """

    summary_counters: tuple[str, ...] = (c.APPENDED, c.REDIS_ERRORS, c.FEED_GAPS)

    def __init__(self, settings: Settings, *, replay: ReplayBuffer, counters: Counters) -> None:
        self._replay = replay
        self._counters = counters
        self.bus = RedisBus(settings, replay=replay, counters=counters)
        self._publish: Publish | None = None

    @property
    def epoch(self) -> str:
        return self._replay.epoch  # Redis's: the bus adopts it into the buffer

    @property
    def problem(self) -> str | None:
        if self.bus.healthy:
            return None
        return "Redis (REDIS_URL) cannot be reached: no batch is confirmed"

    @property
    def redis_healthy(self) -> bool | None:
        return self.bus.healthy

    def start(self, publish: Publish, on_gap: OnGap) -> None:
        self._publish = publish
        self.bus.start(self._take, on_gap)
        logger.info("Cluster mode: history and bus in Redis (REDIS_URL)")

    async def close(self) -> None:
        await self.bus.close()

    # --- appending ------------------------------------------------------------------------------
    async def append(
        self, deliveries: list[Delivery], seen: Seen, observe: Observe | None = None
    ) -> list[str]:
        """The batch goes to the shared history; every server's feed reader emits it
        (:meth:`_take`). Nothing is confirmed while Redis cannot be reached."""
        started = time.time_ns() if observe is not None else 0
        try:
            appended, duplicates = await self.bus.append(deliveries, seen.window_s)
        except HistoryUnavailable:
            if observe is not None:
                _observe_batch(observe, deliveries, started, None, set())
            return []
        if observe is not None:
            _observe_batch(observe, deliveries, started, set(appended), set(duplicates))
        self._counters.inc(c.APPENDED, len(appended))
        if duplicates:
            self._counters.inc(c.DUPLICATE_DROPPED, len(duplicates))
            logger.debug("Dropped %d duplicate(s): %s", len(duplicates), duplicates[:5])
        return appended + duplicates

    async def _take(
        self,
        stream: Stream,
        offset: int,
        event: str,
        payload: orjson.Fragment,
        size: int,
        sent_ms: int | None,
    ) -> None:
        """One event of the shared feed, to this server's history and clients."""
        assert self._publish is not None
        self._replay.append(stream, offset, event, payload, size + ENTRY_OVERHEAD_BYTES)
        try:
            await self._publish(stream, event, payload, sent_ms, int(time.time() * 1000))
        except Exception:
            self._counters.inc(c.EMIT_FAILED)
            logger.exception("Emit of offset %d on %s failed", offset, stream)
            return
        self._counters.inc(c.EMITTED)

    # --- resuming -------------------------------------------------------------------------------
    async def catch_up(self, stream: Stream, since: Any, budget: int) -> CatchUp:
        """What the shared history holds after ``since`` that this server's feed reader
        handled already; :meth:`after` goes on from the buffer."""
        return await self.bus.catch_up(stream, since, budget)

    async def latest(self, stream: Stream, budget: int) -> CatchUp:
        return await self.bus.latest(stream, budget)

    async def recent(
        self, stream: Stream, count: int, budget: int, *, until: int | None = None
    ) -> CatchUp:
        return await self.bus.recent(stream, count, budget, until=until)

    def after(self, stream: Stream, offset: int) -> list[Entry]:
        return self._replay.after(stream, offset)

    def position(self, stream: Stream, reached: int | None) -> int:
        """The shared history's position, or this buffer's if later."""
        known = self._replay.known_offset(stream)
        return max(known if known is not None else 0, reached if reached is not None else 0)


def _observe_batch(
    observe: Observe,
    deliveries: list[Delivery],
    started: int,
    appended: set[str] | None,
    duplicates: set[str],
) -> None:
    """One script call appends the whole batch: each delivery's span is the batch's
    (`appended` None: Redis did not answer)."""
    ended = time.time_ns()
    for delivery in deliveries:
        if appended is None:
            outcome = "unavailable"
        elif delivery.message_id in appended:
            outcome = "appended"
        elif delivery.message_id in duplicates:
            outcome = "duplicate"
        else:
            outcome = "failed"
        observe(delivery, outcome, started, ended)
