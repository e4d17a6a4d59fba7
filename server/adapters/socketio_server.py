"""python-socketio's server for the relay: every client's outgoing queue bounded, and a client
past a bound told why and disconnected.

The bound itself is the client's queue (server/outgoing/queue.py), which
python-engineio's server makes for each socket (server/adapters/engineio_server.py); this
server builds that engine.io server and cuts the clients whose queue overflowed.
"""

from __future__ import annotations

import logging
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.adapters.engineio_server import BoundedEngineIO
from server.adapters.fanout import FanoutManager
from server.outgoing.queue import OutgoingQueue
from shared import counters as c
from shared.counters import Counters
from shared.envelope import OVERFLOW_EVENT

logger = logging.getLogger(__name__)


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
