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

The queue bounds memory; :func:`websocket_protocol` bounds time. A client that takes no
frame for `CLIENT_WRITE_TIMEOUT_S` has its TCP connection aborted, so that what the kernel
buffers for it (megabytes on loopback) and the writer that waits on it are freed too: uvicorn
itself waits for a stuck socket forever, even to send a close.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

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

    def put_nowait(self, item: Any) -> None:
        if item is None:  # engine.io's "writer, stop"
            super().put_nowait(item)
            return
        if self.overflowed:
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
    """python-engineio's server with an :class:`OutgoingQueue` per client socket."""

    max_packets: int | None = None  # set by RelaySocketServer; None: unbounded
    max_bytes: int | None = None
    on_overflow: Callable[[OutgoingQueue], None] | None = None

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        if self.max_packets is None or self.max_bytes is None or self.on_overflow is None:
            return super().create_queue(*args, **kwargs)
        return OutgoingQueue(
            max_packets=self.max_packets, max_bytes=self.max_bytes, on_overflow=self.on_overflow
        )


class RelaySocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's `AsyncServer` whose clients' outgoing queues are bounded; a client
    past a bound gets ``relay:overflow`` with the reason, on each namespace it is connected
    to, and is disconnected (counted as ``slow_client_disconnected``).

    Usage::

        sio = RelaySocketServer(max_queue_bytes=4 << 20, max_queue_packets=10_000,
                                counters=counters, async_mode="asgi", ...)
    """

    def __init__(
        self, *, max_queue_bytes: int, max_queue_packets: int, counters: Counters, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._counters = counters
        eio: BoundedEngineIO = self.eio
        eio.max_bytes, eio.max_packets = max_queue_bytes, max_queue_packets
        eio.on_overflow = self._overflowed

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return BoundedEngineIO

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


class _TimedWebSocketProtocol(WebSocketsSansIOProtocol):
    write_timeout_s: float = 10.0

    async def send(self, message: Any) -> None:
        if not self.writable.is_set():  # the transport's buffer is full: the client is not reading
            try:
                await asyncio.wait_for(self.writable.wait(), self.write_timeout_s)
            except TimeoutError:
                logger.warning(
                    "Client %s took nothing for %.0f s (CLIENT_WRITE_TIMEOUT_S); aborting its "
                    "connection",
                    self.client,
                    self.write_timeout_s,
                )
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    # linger 0: a reset, and the kernel drops what it still holds for the
                    # client now (a plain close would keep trying to deliver megabytes)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.transport.abort()  # connection_lost() follows: the send below raises
        await super().send(message)


def websocket_protocol(write_timeout_s: float) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's websockets-sansio protocol (what its "auto" picks) with a write timeout, for
    uvicorn's `ws` setting, which takes a protocol class."""
    return type(
        "RelayWebSocketProtocol", (_TimedWebSocketProtocol,), {"write_timeout_s": write_timeout_s}
    )
