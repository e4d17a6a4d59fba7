"""One server's history: this process numbers each event, keeps it for replay and emits it.

The :class:`~server.history.base.History` of a server on its own (no REDIS_URL): the replay
buffer (server/history/replay.py) is the whole history, and its epoch is made at start, so a
client that resumes after a restart is told it cannot recover.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from server.history.base import CatchUp, Observe, OnGap, Publish, Seen
from server.history.reasons import (
    SINCE_NOT_AN_OBJECT,
    encoded_for_clients,
    offset_error,
    restarted,
)
from server.history.replay import Entry, ReplayBuffer, Shared, Stream
from server.history.state import Held, LocalState, state_room
from server.payload import ENTRY_OVERHEAD_BYTES, client_payload
from shared import counters as c
from shared.counters import Counters
from shared.wire import Delivery

logger = logging.getLogger(__name__)

#: What :meth:`LocalHistory._emit_one`'s answer means, for :data:`Observe` (above 0: emitted).
_OUTCOME: dict[int | None, str] = {None: "failed", 0: "duplicate", -1: "stale"}


class LocalHistory:
    """The history of a server on its own.

    Usage::

        history = LocalHistory(replay, counters=counters)
        history.start(publish, on_gap)                      # on_gap is never called
        confirmed = await history.append(deliveries, seen)  # emitted, or emitted before
    """

    summary_counters: tuple[str, ...] = ()

    def __init__(
        self,
        replay: ReplayBuffer,
        *,
        counters: Counters,
        state_rooms: tuple[str, ...] = (),
        state: LocalState | None = None,
    ) -> None:
        self._replay = replay
        self._counters = counters
        self._publish: Publish | None = None
        self._state_rooms = state_rooms
        self._state = state or LocalState(max_keys=1, max_bytes=1024, max_total_bytes=1024)

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
    async def append(
        self, deliveries: list[Delivery], seen: Seen, observe: Observe | None = None
    ) -> list[str]:
        """Emit each delivery to the rooms it has not reached yet; return the ids that are
        safe to delete: emitted to every room, now or before (a redelivery)."""
        confirmed = []
        failed_groups: set[str] = set()  # FIFO: a group's later messages wait for its failed one
        for delivery in deliveries:
            if delivery.group is not None and delivery.group in failed_groups:
                if observe is not None:
                    now = time.time_ns()
                    observe(delivery, "held", now, now)
                continue
            started = time.time_ns() if observe is not None else 0
            outcome = await self._emit_one(delivery, seen)
            if observe is not None:
                observe(delivery, _OUTCOME.get(outcome, "emitted"), started, time.time_ns())
            if outcome is None:
                if delivery.group is not None:
                    failed_groups.add(delivery.group)
                continue
            if outcome == 0:
                self._counters.inc(c.DUPLICATE_DROPPED)
                logger.debug("Dropped duplicate %s", delivery.message_id)
            elif outcome > 0:
                self._counters.inc(c.EMITTED)
            confirmed.append(delivery.message_id)
        return confirmed

    async def _emit_one(self, delivery: Delivery, seen: Seen) -> int | None:
        """Emit to each target room not reached before (a stream each, with its own offset).

        Returns how many rooms it went to now (0: a duplicate; -1: every room it names is a
        state room holding a newer version of its key), or None if it failed.
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
        key = envelope.key or ""
        emitted = 0
        for room in rooms:
            stream = (envelope.namespace, room)
            is_state = state_room(self._state_rooms, room)
            if is_state and not self._state.newer(stream, key, envelope.version):
                self._counters.inc(c.STATE_STALE_DROPPED)
                seen.add((delivery.message_id, room))
                continue
            offset = replay.next_offset(stream)
            payload = client_payload(delivery, room, offset, replay.epoch, data)
            # Into the history (and the room's state) before it goes out, with no await in
            # between: a client that resumes or joins meanwhile finds it there or gets it live,
            # never neither.
            replay.append(stream, offset, envelope.event, payload, ENTRY_OVERHEAD_BYTES, shared)
            if is_state:
                held = Held(
                    offset, envelope.event, payload, envelope.version, size + ENTRY_OVERHEAD_BYTES
                )
                self._state.keep(stream, key, held)
            emitted += 1
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
        return emitted if emitted else -1

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

    async def latest(self, stream: Stream, budget: int) -> CatchUp:
        """A state room's latest events (the newest that fit in `budget` bytes), and the
        stream's position, from which :meth:`after` goes on."""
        entries, size = [], 0
        for held in reversed(self._state.latest(stream)):
            if size + held.size > budget:
                break
            entries.append((held.event, held.payload))
            size += held.size
        entries.reverse()
        return CatchUp(self._replay.epoch, self._replay.last_offset(stream), entries, size)

    async def recent(
        self, stream: Stream, count: int, budget: int, *, until: int | None = None
    ) -> CatchUp:
        entries, size = [], 0
        held = self._replay.recent(stream, count + self._replay.last_offset(stream))
        held = [e for e in held if until is None or e.offset <= until][-count:] if count else []
        for entry in reversed(held):
            if size + entry.bytes > budget:
                break
            entries.append((entry.event, entry.payload))
            size += entry.bytes
        entries.reverse()
        return CatchUp(self._replay.epoch, self._replay.last_offset(stream), entries, size)

    def after(self, stream: Stream, offset: int) -> list[Entry]:
        return self._replay.since(stream, self._replay.epoch, offset)

    def position(self, stream: Stream, reached: int | None) -> int:
        return self._replay.last_offset(stream)
