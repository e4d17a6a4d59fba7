"""Turning deliveries into Socket.IO events: de-duplication, offsets, replay history, emit.

The ZeroMQ side (server/intake/handoff.py) hands each batch here and sends back what this returns:
the MessageIds safe to delete from SQS. Nothing here knows about sockets or the wire format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import socketio

from server.adapters.lookups import has_members
from server.history.cluster import HistoryUnavailable, RedisBus
from server.history.replay import ReplayBuffer, Shared, Stream
from server.intake.dedup import RecentIds
from server.metrics import ServerMetrics
from server.payload import ENTRY_OVERHEAD_BYTES, client_payload, encode_data, target_room
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings
from shared.wire import Delivery

logger = logging.getLogger(__name__)

#: After an emit, once the event loop has been held this long since it last ran anything
#: else, the emitter lets it (`asyncio.sleep(0)`) before the next emit of the batch. One
#: broadcast to 10,000 clients holds it about 200 ms; a batch of ten of them would hold it
#: 2 s, every other client's packets, pings and the workers' pings waiting behind it.
HOLD_S = 0.02


class Emitter:
    """Emits each delivery once per room, numbered in its stream and kept for replay.

    Usage (the hand-off calls it for every batch)::

        emitter = Emitter(sio=sio, settings=settings, replay=replay, counters=counters,
                          metrics=metrics)
        confirmed = await emitter.emit(deliveries)   # MessageIds safe to delete
    """

    def __init__(
        self,
        *,
        sio: socketio.AsyncServer,
        settings: Settings,
        replay: ReplayBuffer,
        counters: Counters,
        metrics: ServerMetrics,
        bus: RedisBus | None = None,
    ) -> None:
        self._sio = sio
        self._settings = settings
        self._replay = replay
        self._counters = counters
        self._metrics = metrics
        self._seen = RecentIds(window_s=settings.dedup_window_s, max_ids=settings.dedup_max_ids)
        self._forgotten_counted = 0
        self._bus = bus
        self._held_since = time.perf_counter()  # when the loop last ran something else

    @property
    def ready(self) -> bool:
        """Whether batches can be taken now (cluster mode: while Redis answers)."""
        return self._bus is None or self._bus.healthy

    @property
    def dedup_window_s(self) -> float:
        return self._seen.window_s

    def cover_visibility_timeout(self, visibility_timeout_s: float | None) -> None:
        """A redelivery comes up to one visibility timeout (plus the ack wait) after the
        receive that failed: remember emitted ids at least that long."""
        if visibility_timeout_s is None:
            return
        if self._seen.cover(visibility_timeout_s + self._settings.ack_timeout_s):
            logger.info(
                "De-duplication window raised to %.0f s (a worker reports a visibility timeout "
                "of %.0f s)",
                self._seen.window_s,
                visibility_timeout_s,
            )

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        """Emit each delivery to the rooms it has not reached yet; return the ids that are
        safe to delete: emitted to every room, now or before (a redelivery)."""
        self._metrics.batch_size.observe(len(deliveries))
        self._held_since = time.perf_counter()  # the loop ran the hand-off's receive just now
        if self._bus is not None:
            return await self._append(self._bus, deliveries)
        confirmed = []
        for delivery in deliveries:
            outcome = await self._emit_one(delivery)
            if outcome is None:
                continue
            if outcome == 0:
                self._counters.inc(c.DUPLICATE_DROPPED)
                logger.debug("Dropped duplicate %s", delivery.message_id)
            else:
                self._counters.inc(c.EMITTED)
            confirmed.append(delivery.message_id)
        forgotten = self._seen.forgotten_early - self._forgotten_counted
        if forgotten:
            self._counters.inc(c.DEDUP_FORGOTTEN_EARLY, forgotten)
            self._forgotten_counted += forgotten
        return confirmed

    async def _append(self, bus: RedisBus, deliveries: list[Delivery]) -> list[str]:
        """Cluster mode: the batch goes to the shared history; every server's feed reader
        emits it (:meth:`publish`). Nothing is confirmed while Redis cannot be reached."""
        try:
            appended, duplicates = await bus.append(deliveries, self._seen.window_s)
        except HistoryUnavailable:
            return []
        self._counters.inc(c.APPENDED, len(appended))
        if duplicates:
            self._counters.inc(c.DUPLICATE_DROPPED, len(duplicates))
            logger.debug("Dropped %d duplicate(s): %s", len(duplicates), duplicates[:5])
        return appended + duplicates

    async def publish(
        self,
        stream: Stream,
        offset: int,
        event: str,
        payload: orjson.Fragment,
        size: int,
        sent_ms: int | None,
    ) -> None:
        """Cluster mode: one event of the shared feed, to this server's history and clients."""
        self._replay.append(stream, offset, event, payload, size + ENTRY_OVERHEAD_BYTES)
        try:
            await self._send(stream, event, payload, sent_ms, int(time.time() * 1000))
        except Exception:
            self._counters.inc(c.EMIT_FAILED)
            logger.exception("Emit of offset %d on %s failed", offset, stream)
            return
        self._counters.inc(c.EMITTED)

    async def _send(
        self, stream: Stream, event: str, payload: Any, sent_ms: int | None, emitted_ms: int
    ) -> None:
        """Emit one event to its stream's room (nothing when nobody is in it), and time it;
        raises what the emit raised."""
        namespace, room = stream
        started = time.perf_counter()
        if has_members(self._sio, namespace, target_room(room)):
            await self._sio.emit(event, payload, to=target_room(room), namespace=namespace)
        done = time.perf_counter()
        self._metrics.emit_seconds.observe(done - started)
        if sent_ms is not None:
            self._metrics.end_to_end_seconds.observe(max(0.0, emitted_ms - sent_ms) / 1000)
        if done - self._held_since > HOLD_S:
            # Between two emits, never between an event's history append and its emit: a
            # client resuming now finds this event in the history and the next one live.
            await asyncio.sleep(0)
            self._held_since = time.perf_counter()

    async def _emit_one(self, delivery: Delivery) -> int | None:
        """Emit to each target room not reached before (a stream each, with its own offset).

        Returns how many rooms it went to now (0: a duplicate), or None if it failed.
        The data is encoded once for all rooms; a room nobody is in costs no encode at all.
        """
        envelope = delivery.envelope
        rooms = [r for r in envelope.rooms if (delivery.message_id, r) not in self._seen]
        if not rooms:
            return 0
        try:
            data, size = encode_data(envelope.data)
        except ValueError as exc:
            self._counters.inc(c.EMIT_FAILED)
            logger.error("Message %s cannot be sent to clients: %s", delivery.message_id, exc)
            return None
        shared = Shared(size)
        for room in rooms:
            stream = (envelope.namespace, room)
            offset = self._replay.next_offset(stream)
            payload = client_payload(delivery, room, offset, self._replay.epoch, data)
            # Into the history before it goes out, with no await in between: a client that
            # resumes meanwhile finds it there or gets it live, never neither.
            self._replay.append(
                stream, offset, envelope.event, payload, ENTRY_OVERHEAD_BYTES, shared
            )
            try:
                await self._send(
                    stream, envelope.event, payload, delivery.sent_ms, payload["emitted_ms"]
                )
            except Exception:
                self._counters.inc(c.EMIT_FAILED)
                logger.exception(
                    "Emit of %s failed; not confirmed, SQS will redeliver it", delivery.message_id
                )
                return None
            self._seen.add((delivery.message_id, room))
        return len(rooms)
