"""Each client's engine.io socket: a heartbeat on timers and a websocket transport that make
nothing per client per beat.

python-engineio keeps a websocket client alive with three waits that it makes anew every
ping interval (25 s): a task that sleeps until the next PING; the writer's wait for its
queue, with a timeout (a task of its own under Python 3.11's `wait_for`), woken by that
PING; and the reader's wait for the next frame, also a task with a timeout, woken by the
client's PONG. Together they are dozens of objects the garbage collector tracks
(coroutines, contexts, futures, timers, tasks), made anew per client per ping interval, each
living one interval. CPython counts its young generation as allocations minus
deallocations, and these die only after they were promoted, so their deaths hide their
births: with many clients the young generation grows far past its threshold between
passes, and each pass over it holds the event loop (docs/operations.md, "The heartbeat costs no task
per client").

:class:`HeartbeatSocket` is engine.io's socket with:

- **the PING on a timer** (`loop.call_later`), and the PONG's deadline on the same handle:
  a client that has not answered within `ping_timeout` is closed at that moment (engine.io
  finds it by a sweep over every client, or by its reader's 45 s timeout);
- **a websocket writer that waits on the queue without a timeout**, to which a PING is
  written at once like any event when nothing waits (server/outgoing/queue.py);
- **a reader that waits for the next frame without a timeout**, and PONGs that do not wake
  it: the websocket protocol hands an engine.io PONG frame straight to
  :meth:`HeartbeatSocket.schedule_ping` (server/adapters/wsprotocol.py), so the reader stays
  parked in its one receive while the client only keeps the connection alive.

What reaches the client is what python-engineio sends: the same packets at the same
intervals, and the same upgrade from long-polling (probe PING, probe PONG, UPGRADE); a
client cut at its deadline is sent engine.io's CLOSE first, as Node's engine.io does.
Long-polling clients get engine.io's own poll, with at most as many packets per answer as
python-engineio's client decodes (:data:`POLL_MAX_PACKETS`).

python-engineio builds its `AsyncSocket` in `_handle_connect`, with no hook for the class;
:meth:`HeartbeatSocket.adopt` gives the socket this class at its `connect` event
(server/adapters/engineio_server.py's `BoundedEngineIO`), before its first ping is scheduled
or its transport runs. The subclass adds no state of its own but a timer handle, what it
attached and what it holds (class defaults until set), so the socket's layout is
engine.io's.

The socket is the client's owner: it holds its queue and transport, and everything else
that lives as long as the client (each namespace's connection, server/sessions/connection.py)
through :meth:`HeartbeatSocket.hold`; whatever ends the client closes them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from engineio import exceptions
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from engineio.payload import Payload

from server.adapters.refusals import Refusals, address_of
from server.conforms import conforms
from server.outgoing.frames import CarriesFrames, FrameWriter, TakesFrameWriter
from shared import counters as c

logger = logging.getLogger(__name__)

#: engine.io's PING, one packet for every client (its frame is made once:
#: server/adapters/frame_websocket.py's `text_frame`)
PING = eio_packet.Packet(eio_packet.PING)
#: what engine.io's packet decoding raises for what is not an engine.io packet
NOT_A_PACKET = (ValueError, IndexError, TypeError)
#: The most packets one long-polling answer carries: python-engineio's client refuses a
#: payload of more (its `Payload.max_decode_packets`, 16) and drops the connection as a
#: "transport error"; the rest waits for the client's next poll. (Node's client takes any
#: number: it only polls again sooner.)
POLL_MAX_PACKETS: int = Payload.max_decode_packets


class HeartbeatSocket(AsyncSocket):  # type: ignore[misc]
    """engine.io's socket whose heartbeat and websocket transport make nothing per beat."""

    _heartbeat: asyncio.TimerHandle | None = None  # the next PING, or the PONG's deadline
    #: the queue and the websocket's frame writer attached to it (:meth:`attach`), if any
    _attached: tuple[TakesFrameWriter, FrameWriter] | None = None
    #: what else lives as long as this client (its namespaces' connections), by key, each
    #: closed when the client goes (:meth:`hold`)
    _held: dict[Hashable, Callable[[], None]] | None = None
    last_ping: float | None  # engine.io's (BaseSocket): when the unanswered PING went
    connected: bool
    upgrading: bool

    @classmethod
    def adopt(cls, socket: Any) -> None:
        """Make engine.io's own socket `socket` a :class:`HeartbeatSocket` (a subclass of a
        stock socket is left as it is)."""
        if type(socket) is AsyncSocket:
            socket.__class__ = cls

    # The heartbeat

    def schedule_ping(self) -> None:
        """engine.io's: after a PONG (and at connect), the next PING in `ping_interval`;
        nothing if no PING is unanswered (a PONG nobody asked for)."""
        if not self.last_ping or self.closing or self.closed:
            return
        self.last_ping = None
        self._arm(self.server.ping_interval, self._ping)

    def _arm(self, delay: float, callback: Any) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._heartbeat = asyncio.get_running_loop().call_later(delay, callback)

    def _ping(self) -> None:
        self._heartbeat = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.queue.put_nowait(PING)
        self._arm(self.server.ping_timeout, self._pong_overdue)

    def _pong_overdue(self) -> None:
        self._heartbeat = None
        if self.last_ping and not (self.closing or self.closed):
            logger.debug("Client %s left a PING unanswered: disconnecting it", self.sid)
            self.server.start_background_task(self._close_unanswered)

    async def _close_unanswered(self) -> None:
        # engine.io's CLOSE, as Node's engine.io sends it (python-engineio's own send of it
        # refuses once the ping has timed out), then nothing more
        self.queue.put_nowait(eio_packet.Packet(eio_packet.CLOSE))
        await self.close(wait=False, abort=True, reason=self.server.reason.PING_TIMEOUT)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """engine.io's close; and whatever closed the socket (this heartbeat, engine.io's
        own ping check, a disconnect), its transport ends too: the None stops the writer,
        which closes the websocket, or ends the long-poll that waits. (engine.io's reader
        would have timed out within 45 s; this one waits for the connection.)"""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        closing_now = not (self.closed or self.closing)
        await super().close(wait=wait, abort=abort, reason=reason)
        if closing_now:
            self.queue.put_nowait(None)
        held, self._held = self._held, None
        for close_part in (held or {}).values():
            close_part()

    # What lives as long as the client

    def hold(self, key: Hashable, close: Callable[[], None]) -> None:
        """Call `close` when this client goes, whatever ends it (once; a key held again
        replaces the first). At once if the client is already gone."""
        if self.closed:
            close()
            return
        if self._held is None:
            self._held = {}
        self._held[key] = close

    def release(self, key: Hashable) -> None:
        """`key` was closed otherwise: nothing to call for it when this client goes."""
        if self._held is not None:
            self._held.pop(key, None)

    # The long-polling transport

    async def poll(self) -> list[Any]:
        """engine.io's: what waits for a long-polling client, once something does (or
        engine.io's QueueEmpty after its ping interval and timeout), but at most
        :data:`POLL_MAX_PACKETS` packets, which every engine.io client decodes."""
        try:
            first = await asyncio.wait_for(
                self.queue.get(), self.server.ping_interval + self.server.ping_timeout
            )
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if first is None:  # the transport ends
            return []
        packets = [first]
        while len(packets) < POLL_MAX_PACKETS:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:  # after these: the next poll ends the transport
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    # The websocket transport

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:  # the client came over long-polling: this is its upgrade
            if not await self._upgrade(ws):
                return
        else:
            self.connected = True
            self.upgraded = True
        self.attach(ws)
        writer_task = asyncio.ensure_future(self._write(ws))
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        try:
            await self._read(ws)
        finally:
            self.detach()
        await self.queue.put(None)  # the writer ends
        await writer_task
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def attach(self, ws: Any) -> None:
        """While `ws` is the transport: its connection's frame writer (when it carries one
        and the queue takes one) gets the queue's packets straight when nothing waits, and
        hands the client's PONGs to :meth:`schedule_ping`. Undone by :meth:`detach`."""
        writer = ws.frame_writer if conforms(ws, CarriesFrames) else None
        queue = self.queue if conforms(self.queue, TakesFrameWriter) else None
        if writer is None or queue is None:
            return
        self.detach()
        self._attached = (queue, writer)
        queue.attach_writer(writer)
        writer.on_pong = self.schedule_ping

    def detach(self) -> None:
        """The websocket is no longer the transport: the queue and the writer part (nothing if
        none is attached)."""
        attached, self._attached = self._attached, None
        if attached is not None:
            queue, writer = attached
            queue.attach_writer(None)
            writer.on_pong = None

    async def _frame(self, ws: Any) -> Any:
        """The client's next websocket message; OSError once the connection is gone."""
        data = await ws.wait()
        if data and len(data) > self.server.max_http_buffer_size:
            raise OSError(f"a packet of {len(data)} bytes, over max_http_buffer_size")
        return data

    async def _read(self, ws: Any) -> None:
        while True:
            try:
                data = await self._frame(ws)
            except (Exception, asyncio.CancelledError):
                return  # as engine.io's reader: the transport is gone; close below
            if data is None:  # the client closed the connection
                return
            try:
                await self.receive(eio_packet.Packet(encoded_packet=data))
            except exceptions.SocketIsClosedError:
                return
            except exceptions.UnknownPacketError:  # a packet type engine.io ignores here
                continue
            except NOT_A_PACKET as exc:
                # not an engine.io packet: the client is cut, as one that breaks the
                # protocol (engine.io's reader let such an error end its task unhandled);
                # counted, and logged once per address per interval
                refusals: Refusals | None = getattr(self.server, "refusals", None)
                if refusals is not None and not (self.closing or self.closed):  # once
                    refusals.refuse(
                        c.CLIENT_PROTOCOL_ERRORS,
                        address_of(_client_of(ws)),
                        "disconnected a client that sent what is not an engine.io packet "
                        f"({type(exc).__name__})",
                    )
                return
            except Exception:
                logger.exception("Client %s: error handling its packet", self.sid)

    async def _write(self, ws: Any) -> None:
        while True:
            pkt = await self.queue.get()
            self.queue.task_done()
            if pkt is None:
                break
            try:
                await ws.send(pkt.encode())
            except Exception:  # the connection is gone: engine.io's writer stops here too
                break
        await ws.close()

    async def _upgrade(self, ws: Any) -> bool:
        """The upgrade from long-polling: the client's probe PING answered with a probe
        PONG, a NOOP to end the poll it has pending, then its UPGRADE. Packets sent
        meanwhile wait in the queue. False when the client did not complete it, within
        engine.io's ping interval and timeout for each step, or when another websocket is
        upgrading the same session."""
        if self.upgrading:
            return False
        self.upgrading = True
        step_s = self.server.ping_interval + self.server.ping_timeout
        try:
            try:
                data = await asyncio.wait_for(self._frame(ws), step_s)
                probe = eio_packet.Packet(encoded_packet=data)
                if probe.packet_type != eio_packet.PING or probe.data != "probe":
                    self.server.logger.info("%s: Failed websocket upgrade, no probe", self.sid)
                    return False
                await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
                await self.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
                data = await asyncio.wait_for(self._frame(ws), step_s)
                upgrade = eio_packet.Packet(encoded_packet=data)
            except (OSError, TimeoutError, *NOT_A_PACKET):
                return False
            if upgrade.packet_type != eio_packet.UPGRADE:
                self.server.logger.info("%s: Failed websocket upgrade, no UPGRADE packet", self.sid)
                return False
            self.upgraded = True
            return True
        finally:
            self.upgrading = False


def _client_of(ws: Any) -> Any:
    """The client's (host, port) of the websocket `ws` (server/adapters/frame_websocket.py's
    `FrameWebSocket`), None if it does not know it."""
    return getattr(ws, "client", None)
