"""Batches from workers into the history, and events from the history to clients' rooms.

The ZeroMQ side (server/intake/handoff.py) hands each batch to :class:`Emitter`, which gives it
to the history (server/history/: de-duplication, offsets, replay, emit) and sends back what
that returns: the MessageIds safe to delete from SQS. The history emits each event through
:class:`RoomSender`. Commands to the relay (``relay:disconnect``) never enter the history: they
are split out of each batch and handed to the control side (server/control/), and confirmed
once it took them. Nothing here knows the ZeroMQ wire format, or which history it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import socketio

from server.adapters.lookups import has_members
from server.control.bus import ControlUnavailable
from server.history.base import History, Observe
from server.history.replay import Stream
from server.intake.dedup import RecentIds
from server.metrics import ServerMetrics
from server.payload import target_room
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings
from shared.wire import Delivery

logger = logging.getLogger(__name__)

#: After an emit, once the event loop has been held this long since it last ran anything
#: else, the sender lets it (`asyncio.sleep(0)`) before the next emit of the batch. One
#: broadcast to many thousands of clients holds it for a good part of a second; a batch of ten
#: would hold it ten times that, every other client's packets, pings and the workers' pings
#: waiting behind it (figures: docs/guarantees.md, guarantee 8).
HOLD_S = 0.02


class RoomSender:
    """Emits one event to its stream's room, timed; the history's
    :data:`~server.history.base.Publish`.

    Usage::

        sender = RoomSender(sio=sio, metrics=metrics)
        history.start(sender.send, on_gap)
        sender.batch_started()               # the loop just ran something else
    """

    def __init__(self, *, sio: socketio.AsyncServer, metrics: ServerMetrics) -> None:
        self._sio = sio
        self._metrics = metrics
        self._held_since = time.perf_counter()  # when the loop last ran something else

    def batch_started(self) -> None:
        """The loop ran the hand-off's receive just now."""
        self._held_since = time.perf_counter()

    async def send(
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


#: The de-duplication key of a command (MessageId, this): in the same window as events'.
COMMAND = "relay:command"


class Commands(Protocol):
    """Takes a command (a delivery whose envelope is ``control``); ControlUnavailable if it
    could not (server/control/disconnect.py's Disconnector)."""

    async def command(self, delivery: Delivery) -> None: ...


class Emitter:
    """The hand-off's handler: each batch to the history, once per message and room.

    Usage (the hand-off calls it for every batch)::

        emitter = Emitter(settings=settings, history=history, sender=sender,
                          counters=counters, metrics=metrics, commands=disconnector)
        confirmed = await emitter.emit(deliveries)   # MessageIds safe to delete
    """

    def __init__(
        self,
        *,
        settings: Settings,
        history: History,
        sender: RoomSender,
        counters: Counters,
        metrics: ServerMetrics,
        commands: Commands | None = None,
        observe: Observe | None = None,
    ) -> None:
        self._settings = settings
        self._observe = observe  # traces on: server/intake/tracing.py
        self._history = history
        self._commands = commands
        self._sender = sender
        self._counters = counters
        self._metrics = metrics
        self._seen = RecentIds(window_s=settings.dedup_window_s, max_ids=settings.dedup_max_ids)
        self._forgotten_counted = 0

    @property
    def ready(self) -> bool:
        """Whether batches can be taken now (cluster mode: while Redis answers)."""
        return self._history.problem is None

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
        """Emit each delivery to the rooms it has not reached yet (through the history);
        return the ids that are safe to delete."""
        self._metrics.batch_size.observe(len(deliveries))
        self._sender.batch_started()
        commands = [d for d in deliveries if d.envelope.control]
        if commands:
            deliveries = [d for d in deliveries if not d.envelope.control]
        confirmed = (
            await self._history.append(deliveries, self._seen, self._observe) if deliveries else []
        )
        for delivery in commands:
            if await self._command(delivery):
                confirmed.append(delivery.message_id)
        forgotten = self._seen.forgotten_early - self._forgotten_counted
        if forgotten:
            self._counters.inc(c.DEDUP_FORGOTTEN_EARLY, forgotten)
            self._forgotten_counted += forgotten
        return confirmed

    async def _command(self, delivery: Delivery) -> bool:
        """Hand a command to the control side once per MessageId (a redelivery within the
        de-duplication window is confirmed again, not carried out again); whether it is safe
        to delete."""
        key = (delivery.message_id, COMMAND)
        if key in self._seen:
            self._counters.inc(c.DUPLICATE_DROPPED)
            return True
        if self._commands is None:
            logger.warning("No handler for command %s; not confirmed", delivery.message_id)
            return False
        try:
            await self._commands.command(delivery)
        except ControlUnavailable as exc:
            logger.warning(
                "Command %s not carried out (%s); not confirmed, SQS will redeliver it",
                delivery.message_id,
                exc,
            )
            return False
        self._seen.add(key)
        return True
