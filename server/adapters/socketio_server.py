"""python-socketio's server for the relay: every client's outgoing queue bounded, and a client
past a bound told why and disconnected; a client that breaks the protocol disconnected once,
counted and logged without a line per packet.

The bound itself is the client's queue (server/outgoing/queue.py), which
python-engineio's server makes for each socket (server/adapters/engineio_server.py); this
server builds that engine.io server and cuts the clients whose queue overflowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.adapters.engineio_server import BoundedEngineIO
from server.adapters.fanout import FanoutManager
from server.adapters.refusals import Refusals, address_of
from server.outgoing.queue import OutgoingQueue
from shared import counters as c
from shared.counters import Counters
from shared.envelope import OVERFLOW_EVENT

logger = logging.getLogger(__name__)

#: What python-socketio's packet decoding raises for what is not a Socket.IO packet (it
#: raises ValueError for most, json's errors are ValueErrors, and a packet without an event
#: name fails later with an IndexError or TypeError)
NOT_A_PACKET = (ValueError, IndexError, TypeError, KeyError, AttributeError)
#: Socket.IO packet types, as the first character of an engine.io MESSAGE's data
_EVENT, _ACK = str(sio_packet.EVENT), str(sio_packet.ACK)
_BINARY = frozenset({str(sio_packet.BINARY_EVENT), str(sio_packet.BINARY_ACK)})


class BoundedSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's `AsyncServer` whose clients' outgoing queues are bounded; a client
    past a bound gets ``relay:overflow`` with the reason, on each namespace it is connected
    to, and is disconnected (counted as ``slow_client_disconnected``).

    Usage::

        sio = BoundedSocketServer(max_queue_bytes=4 << 20, max_queue_packets=10_000,
                                counters=counters, async_mode="asgi", ...)
    """

    def __init__(
        self,
        *,
        max_queue_bytes: int,
        max_queue_packets: int,
        counters: Counters,
        on_client_gone: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """`on_client_gone(remaining)` is called as each engine.io client goes (every
        transport, whether or not it joined a namespace)."""
        # every emit encoded once for all its recipients (server/adapters/fanout.py)
        kwargs.setdefault("client_manager", FanoutManager())
        super().__init__(**kwargs)
        self._counters = counters
        self._refusals = Refusals(counters)
        eio: BoundedEngineIO = self.eio
        eio.max_bytes, eio.max_packets = max_queue_bytes, max_queue_packets
        eio.on_overflow = self._overflowed
        eio.refusals = self._refusals
        eio.on_client_gone = on_client_gone

    def limit_messages(self, max_bytes: int) -> None:
        """The largest message a client may send, bytes (CLIENT_MESSAGE_MAX_BYTES): engine.io's
        `max_http_buffer_size`, which refuses a long-polling POST past it (413) and, with the
        same bound in uvicorn's `ws_max_size`, a WebSocket message."""
        self.eio.max_http_buffer_size = max_bytes

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

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """python-socketio's dispatch of a client's message, for what the relay takes: a
        client is disconnected for a binary attachment or event (the relay offers none; an
        attachment count it declares would otherwise keep what follows in memory), an event
        or ack to a namespace it is not connected to (Node's Socket.IO closes such a client
        too; python-socketio drops it and logs a line per packet), or what is not a Socket.IO
        packet (python-engineio logged a traceback per packet and kept the client)."""
        refused = _refusal(data)
        if refused is None and data[:1] in (_EVENT, _ACK):
            namespace = _namespace_of(data)
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is None or not self.manager.is_connected(sid, namespace):
                refused = f"an event to namespace {namespace[:64]!r}, not connected to it"
        if refused is None:
            try:
                await super()._handle_eio_message(eio_sid, data)
                return
            except NOT_A_PACKET as exc:
                refused = f"what is not a Socket.IO packet ({type(exc).__name__})"
        await self._disconnect_offender(eio_sid, refused)

    async def _disconnect_offender(self, eio_sid: str, what: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.closing:
            return  # refused already: counted once
        scope = (self.environ.get(eio_sid) or {}).get("asgi.scope") or {}
        self._refusals.refuse(
            c.CLIENT_PROTOCOL_ERRORS,
            address_of(scope.get("client")),
            f"disconnected a client that sent {what}",
        )
        await socket.close(wait=False, abort=True, reason=self.reason.SERVER_DISCONNECT)

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


def _refusal(data: Any) -> str | None:
    """Why a message is refused before it is decoded, or None."""
    if not isinstance(data, str):
        return "a binary attachment it was never offered"
    if data[:1] in _BINARY:
        return "a binary event or ack (the relay offers none)"
    return None


def _namespace_of(data: str) -> str:
    """The namespace of an encoded Socket.IO packet, as python-socketio's decoding reads it."""
    rest = data[1:]
    dash = rest.find("-")
    if dash > 0 and rest[:dash].isdigit():
        rest = rest[dash + 1 :]
    if rest[:1] != "/":
        return "/"
    end = rest.find(",")
    namespace = rest if end == -1 else rest[:end]
    return namespace.partition("?")[0]
