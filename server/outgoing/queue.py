"""Every client's outgoing queue, bounded: a client that stops reading cannot grow the
server's memory.

python-engineio keeps one `asyncio.Queue` per client of what it has not written yet, without
a bound (python-engineio has had an issue open on it for years): once the client stops
reading, the socket buffers and then uvicorn's flow control fill, engine.io's writer waits,
and every event for that client piles up in its queue. :class:`OutgoingQueue` counts its
packets and their encoded size; past `CLIENT_QUEUE_MAX_PACKETS` or `CLIENT_QUEUE_MAX_BYTES`
it drops what it holds, takes nothing more but the notice, and the client is told why
(`relay:overflow`) and disconnected (server/adapters/socketio_server.py). A reconnecting
client resumes from its last offset (docs/protocol.md, "Replay on reconnect"), so a client that was
only slow for a moment loses nothing it can replay.

engine.io's server makes one for each socket (server/adapters/engineio_server.py's
`create_queue`). The queue bounds memory; server/adapters/wsprotocol.py bounds time (a client
that takes nothing for `CLIENT_WRITE_TIMEOUT_S` is cut). The queue is also where the
fan-out's direct write happens (server/adapters/fanout.py): a packet for a websocket client
with nothing queued and an idle writer goes straight to the connection, so nothing ever
overtakes what waits. It is an unbounded :class:`~server.lean.LeanQueue` underneath, which
holds no deque while empty (asyncio's Queue holds four from the start, about 3 KB a client).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.lean import LeanQueue
from server.outgoing.frames import FrameWriter

logger = logging.getLogger(__name__)

#: What a packet costs beyond its data (the Packet object, its queue slot).
PACKET_OVERHEAD_BYTES = 64


def packet_bytes(pkt: Any) -> int:
    """About what a queued engine.io packet holds: its encoded data (characters of a text
    packet, which is bytes for ASCII JSON) plus a fixed overhead."""
    data = getattr(pkt, "data", None)
    return PACKET_OVERHEAD_BYTES + (len(data) if isinstance(data, str | bytes) else 0)


class OutgoingQueue(LeanQueue[Any]):
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
        self,
        *,
        max_packets: int,
        max_bytes: int,
        on_overflow: Callable[[OutgoingQueue], None],
        frame_of: Callable[[Any], bytes],
    ) -> None:
        """`frame_of` makes a packet's websocket frame for the attached writer (the engine.io
        adapter's `text_frame`: framing a packet takes the libraries' own encoders)."""
        super().__init__()
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = False
        self._on_overflow = on_overflow
        self._frame_of = frame_of
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
            and self._writer.write_frame(self._frame_of(item))
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
