"""Every client's outgoing queue, bounded: a client that stops reading cannot grow the
server's memory.

python-engineio keeps one `asyncio.Queue` per client of what it has not written yet, without
a bound (python-engineio has had an issue open on it for years): once the client stops
reading, the socket buffers and then uvicorn's flow control fill, engine.io's writer waits,
and every event for that client piles up in its queue. Here the queue counts its packets and
their encoded size; past `CLIENT_QUEUE_MAX_PACKETS` or `CLIENT_QUEUE_MAX_BYTES` it drops what
it holds, takes nothing more but the notice, and the client is told why (`relay:overflow`)
and disconnected. A reconnecting client resumes from its last offset (README, "Replay on
reconnect"), so a client that was only slow for a moment loses nothing it can replay.

Reached through python-socketio's and python-engineio's own hooks: the engine.io server
class an `AsyncServer` builds (`_engineio_server_class`) and the queue it makes for each
socket (`create_queue`).

The queue bounds memory; server/adapters/wsprotocol.py bounds time (a client that takes nothing for
`CLIENT_WRITE_TIMEOUT_S` is cut). The queue is also where the fan-out's direct write happens
(server/adapters/fanout.py): a packet for a websocket client with nothing queued and an idle writer
goes straight to the connection, so nothing ever overtakes what waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.adapters.fanout import FanoutManager, FrameWebSocket, FrameWriter, text_frame
from server.adapters.transport import HeartbeatSocket
from shared import counters as c
from shared.counters import Counters
from shared.envelope import OVERFLOW_EVENT

logger = logging.getLogger(__name__)

#: What a packet costs beyond its data (the Packet object, its queue slot).
PACKET_OVERHEAD_BYTES = 64


def packet_bytes(pkt: Any) -> int:
    """About what a queued engine.io packet holds: its encoded data (characters of a text
    packet, which is bytes for ASCII JSON) plus a fixed overhead."""
    data = getattr(pkt, "data", None)
    return PACKET_OVERHEAD_BYTES + (len(data) if isinstance(data, str | bytes) else 0)


class OutgoingQueue(asyncio.Queue[Any]):
    """One client's outgoing engine.io packets, bounded by count and bytes.

    Over a bound it empties itself and calls `on_overflow(self)` once; from then on it takes
    only what `put_notice` puts (the reason, for the client) and the `None` that ends
    engine.io's writer, and drops the rest.

    While a websocket's frame writer is attached (:meth:`attach_writer`, by
    server/adapters/transport.py's socket while the websocket is its transport), a text packet put
    while the queue is empty and its reader (the socket's writer task) waits in :meth:`get`
    is written to the connection at once instead: nothing is queued then and nothing is in
    the writer's hands, so the order is the same as through the queue.
    """

    def __init__(
        self, *, max_packets: int, max_bytes: int, on_overflow: Callable[[OutgoingQueue], None]
    ) -> None:
        super().__init__()
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = False
        self._on_overflow = on_overflow
        self._writer: FrameWriter | None = None
        self._readers = 0  # get() calls waiting

    def attach_writer(self, writer: FrameWriter | None) -> None:
        """Write packets straight to `writer` when nothing waits (None: stop)."""
        self._writer = writer

    @property
    def writer(self) -> FrameWriter | None:
        """The frame writer attached now, if any."""
        return self._writer

    async def get(self) -> Any:
        self._readers += 1
        try:
            return await super().get()
        finally:
            self._readers -= 1

    def put_nowait(self, item: Any) -> None:
        if item is None:  # engine.io's "writer, stop"
            super().put_nowait(item)
            return
        if self.overflowed:
            return
        if (
            self._writer is not None
            and self._readers
            and self.empty()
            and not item.binary
            and self._writer.write_frame(text_frame(item))
        ):
            return
        size = packet_bytes(item)
        if self.qsize() >= self.max_packets or self.bytes + size > self.max_bytes:
            self._overflow()
            return
        self.bytes += size
        super().put_nowait(item)

    def put_notice(self, item: Any) -> None:
        """Queue `item` whatever the bounds: the one packet that says why the client goes."""
        self.bytes += packet_bytes(item)
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        item = super().get_nowait()
        if item is not None:
            self.bytes -= packet_bytes(item)
        return item

    def _overflow(self) -> None:
        held, held_bytes = self.qsize(), self.bytes
        self.overflowed = True
        while not self.empty():  # free what it held now, not when the client is gone
            self.get_nowait()
            self.task_done()
        logger.debug("Outgoing queue overflowed holding %d packets, %d bytes", held, held_bytes)
        self._on_overflow(self)


class BoundedEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with an :class:`OutgoingQueue` per client socket, each
    socket a :class:`~server.adapters.transport.HeartbeatSocket`, and a send for the fan-out
    that needs no coroutine per recipient."""

    max_packets: int | None = None  # set by BoundedSocketServer; None: unbounded
    max_bytes: int | None = None
    on_overflow: Callable[[OutgoingQueue], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The driver's table is shared by every server of the mode: this one gets a copy
        # whose websocket hands the connection's frame writer to the queue
        # (server/adapters/fanout.py).
        driver: dict[str, Any] = self._async  # type: ignore[has-type]
        self._async = {**driver, "websocket": FrameWebSocket}

    def send_packet_now(self, sid: str, pkt: eio_packet.Packet, now: float) -> None:
        """engine.io's `send_packet` without a coroutine, for the fan-out: put `pkt` in the
        client's queue (which may write it at once). `now` is `time.time()`."""
        socket = self.sockets.get(sid)
        if socket is None or socket.closed:
            return
        if socket.last_ping and now - socket.last_ping > self.ping_timeout:
            # engine.io's own send closes a client that stopped answering pings
            self.start_background_task(socket.send, pkt)
            return
        socket.queue.put_nowait(pkt)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            # the socket's heartbeat and websocket transport (server/adapters/transport.py): its
            # first place in a hook, before its ping is scheduled or its transport runs
            HeartbeatSocket.adopt(self.sockets.get(args[0]))
        result = await super()._trigger_event(event, *args, **kwargs)
        if event == "disconnect" and args[1:2] == (self.reason.CLIENT_DISCONNECT,):
            # A long-polling client closed: python-engineio leaves the GET it has pending
            # open until the ping times out (the client's disconnect() waited ~30 s for it,
            # and the server held the request that long). Answer it now, as Node's engine.io
            # does; the queue's None makes engine.io's poll return nothing. No public hook
            # sees a client's close, hence the engine.io server's own event dispatch.
            socket = self.sockets.get(args[0])
            if socket is not None and not socket.upgraded:
                socket.queue.put_nowait(None)
        return result

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        if self.max_packets is None or self.max_bytes is None or self.on_overflow is None:
            return super().create_queue(*args, **kwargs)
        return OutgoingQueue(
            max_packets=self.max_packets, max_bytes=self.max_bytes, on_overflow=self.on_overflow
        )


class BoundedSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's `AsyncServer` whose clients' outgoing queues are bounded; a client
    past a bound gets ``relay:overflow`` with the reason, on each namespace it is connected
    to, and is disconnected (counted as ``slow_client_disconnected``).

    Usage::

        sio = BoundedSocketServer(max_queue_bytes=4 << 20, max_queue_packets=10_000,
                                counters=counters, async_mode="asgi", ...)
    """

    def __init__(
        self, *, max_queue_bytes: int, max_queue_packets: int, counters: Counters, **kwargs: Any
    ) -> None:
        # every emit encoded once for all its recipients (server/adapters/fanout.py)
        kwargs.setdefault("client_manager", FanoutManager())
        super().__init__(**kwargs)
        self._counters = counters
        eio: BoundedEngineIO = self.eio
        eio.max_bytes, eio.max_packets = max_queue_bytes, max_queue_packets
        eio.on_overflow = self._overflowed

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return BoundedEngineIO

    def session_count(self) -> int:
        """How many engine.io sessions (clients, whatever their namespaces) are open."""
        return len(self.eio.sockets)

    async def close_all_sessions(self) -> None:
        """Close every engine.io session; socket.io clients reconnect by themselves."""
        await self.eio.disconnect()

    def _overflowed(self, queue: OutgoingQueue) -> None:
        # Called while something is being put in the queue: the work goes in a task.
        eio_sid = next((sid for sid, s in self.eio.sockets.items() if s.queue is queue), None)
        if eio_sid is not None:
            self.start_background_task(self._disconnect_slow, eio_sid, queue)

    async def _disconnect_slow(self, eio_sid: str, queue: OutgoingQueue) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.closing:
            return
        reason = (
            f"too slow: more than {queue.max_packets} packets or {queue.max_bytes} bytes "
            "waited to be sent (CLIENT_QUEUE_MAX_PACKETS, CLIENT_QUEUE_MAX_BYTES); reconnect "
            "and resume from your last offset"
        )
        self._counters.inc(c.SLOW_CLIENT_DISCONNECTED)
        logger.warning("Disconnecting client %s: %s", eio_sid, reason)
        for namespace in list(self.manager.get_namespaces()):
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is None:
                continue
            notice = self.packet_class(
                sio_packet.EVENT, namespace=namespace, data=[OVERFLOW_EVENT, {"reason": reason}]
            )
            queue.put_notice(eio_packet.Packet(eio_packet.MESSAGE, data=notice.encode()))
        # abort: no CLOSE packet behind the notice (nothing more is queued), and engine.io's
        # disconnect handlers run now, so the client leaves every room at once.
        await socket.close(wait=False, abort=True, reason=self.reason.SERVER_DISCONNECT)
        queue.put_nowait(None)  # engine.io's writer ends once the client read the notice
