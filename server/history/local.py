"""One server's history: this process numbers each event, keeps it for replay and emits it.

The :class:`~server.history.base.History` of a server on its own (no REDIS_URL): the replay
buffer (server/history/replay.py) is the whole history, and its epoch is made at start, so a
client that resumes after a restart is told it cannot recover.
"""

from __future__ import annotations

import logging
from typing import Any

from server.history.base import CatchUp, OnGap, Publish, Seen
from server.history.reasons import (
    SINCE_NOT_AN_OBJECT,
    encoded_for_clients,
    offset_error,
    restarted,
)
from server.history.replay import Entry, ReplayBuffer, Shared, Stream
from server.payload import ENTRY_OVERHEAD_BYTES, client_payload
from shared import counters as c
from shared.counters import Counters
from shared.wire import Delivery

logger = logging.getLogger(__name__)


class LocalHistory:
    """The history of a server on its own.

    Usage::

        history = LocalHistory(replay, counters=counters)
        history.start(publish, on_gap)                      # on_gap is never called
        confirmed = await history.append(deliveries, seen)  # emitted, or emitted before
    """

    summary_counters: tuple[str, ...] = ()

    def __init__(self, replay: ReplayBuffer, *, counters: Counters) -> None:
        self._replay = replay
        self._counters = counters
        self._publish: Publish | None = None

    @property
    def epoch(self) -> str:
        return self._replay.epoch

    @property
    def problem(self) -> str | None:
        return None  # nothing to wait for: batches are always confirmed once emitted

    @property
    def redis_healthy(self) -> bool | None:
        return None

    def start(self, publish: Publish, on_gap: OnGap) -> None:
        self._publish = publish
        logger.info("Replay epoch %s", self._replay.epoch)

    async def close(self) -> None:
        pass

    # --- appending ------------------------------------------------------------------------------
    async def append(self, deliveries: list[Delivery], seen: Seen) -> list[str]:
        """Emit each delivery to the rooms it has not reached yet; return the ids that are
        safe to delete: emitted to every room, now or before (a redelivery)."""
        confirmed = []
        for delivery in deliveries:
            outcome = await self._emit_one(delivery, seen)
            if outcome is None:
                continue
            if outcome == 0:
                self._counters.inc(c.DUPLICATE_DROPPED)
                logger.debug("Dropped duplicate %s", delivery.message_id)
            else:
                self._counters.inc(c.EMITTED)
            confirmed.append(delivery.message_id)
        return confirmed

    async def _emit_one(self, delivery: Delivery, seen: Seen) -> int | None:
        """Emit to each target room not reached before (a stream each, with its own offset).

        Returns how many rooms it went to now (0: a duplicate), or None if it failed.
        The data is encoded once for all rooms; a room nobody is in costs no encode at all.
        """
        assert self._publish is not None, "start() first"
        envelope = delivery.envelope
        rooms = [r for r in envelope.rooms if (delivery.message_id, r) not in seen]
        if not rooms:
            return 0
        encoded = encoded_for_clients(delivery, self._counters)
        if encoded is None:
            return None
        data, size = encoded
        shared = Shared(size)
        replay = self._replay
        for room in rooms:
            stream = (envelope.namespace, room)
            offset = replay.next_offset(stream)
            payload = client_payload(delivery, room, offset, replay.epoch, data)
            # Into the history before it goes out, with no await in between: a client that
            # resumes meanwhile finds it there or gets it live, never neither.
            replay.append(stream, offset, envelope.event, payload, ENTRY_OVERHEAD_BYTES, shared)
            try:
                await self._publish(
                    stream, envelope.event, payload, delivery.sent_ms, payload["emitted_ms"]
                )
            except Exception:
                self._counters.inc(c.EMIT_FAILED)
                logger.exception(
                    "Emit of %s failed; not confirmed, SQS will redeliver it", delivery.message_id
                )
                return None
            seen.add((delivery.message_id, room))
        return len(rooms)

    # --- resuming -------------------------------------------------------------------------------
    async def catch_up(self, stream: Stream, since: Any, budget: int) -> CatchUp:
        """Where :meth:`after` starts: the client's offset, checked. Nothing to send first."""
        epoch = self._replay.epoch
        if since is None:
            return CatchUp(epoch, None)
        if not isinstance(since, dict):
            return CatchUp(epoch, None, failure=SINCE_NOT_AN_OBJECT)
        if since.get("epoch") != epoch:
            # Another run's offsets mean nothing here; what this run emitted on the stream
            # since it started may still be sent (the client still has to resync).
            return CatchUp(epoch, 0, failure=restarted(since.get("epoch"), epoch))
        offset = since.get("offset")
        failure = offset_error(offset)
        if failure is not None or not isinstance(offset, int):
            return CatchUp(epoch, None, failure=failure)
        return CatchUp(epoch, offset)

    def after(self, stream: Stream, offset: int) -> list[Entry]:
        return self._replay.since(stream, self._replay.epoch, offset)

    def position(self, stream: Stream, reached: int | None) -> int:
        return self._replay.last_offset(stream)
