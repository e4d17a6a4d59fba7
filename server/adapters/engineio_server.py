"""python-engineio's server for the relay: a bounded outgoing queue per client, each client's
socket with the heartbeat on timers, and a send for the fan-out that needs no coroutine per
recipient.

Reached through python-socketio's own hook for the engine.io server class an `AsyncServer`
builds (`_engineio_server_class`, server/adapters/socketio_server.py) and python-engineio's
for the queue it makes for each socket (`create_queue`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import engineio
from engineio import packet as eio_packet

from server.adapters.asgi_environ import translate_request
from server.adapters.frame_websocket import FrameWebSocket, text_frame
from server.adapters.refusals import Refusals
from server.adapters.transport import HeartbeatSocket
from server.outgoing.queue import OutgoingQueue


class BoundedEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with an :class:`OutgoingQueue` per client socket, each
    socket a :class:`~server.adapters.transport.HeartbeatSocket`, and a send for the fan-out
    that needs no coroutine per recipient."""

    max_packets: int | None = None  # set by BoundedSocketServer; None: unbounded
    max_bytes: int | None = None
    on_overflow: Callable[[OutgoingQueue], None] | None = None
    refusals: Refusals | None = None  # set by BoundedSocketServer: protocol errors counted
    #: set by BoundedSocketServer: called as each client goes, with how many remain
    on_client_gone: Callable[[int], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The driver's table is shared by every server of the mode: this one gets a copy
        # whose websocket hands the connection's frame writer to the queue
        # (server/adapters/frame_websocket.py), and whose request environ is made without a
        # class per request (server/adapters/asgi_environ.py).
        driver: dict[str, Any] = self._async  # type: ignore[has-type]
        self._async = {
            **driver,
            "websocket": FrameWebSocket,
            "translate_request": translate_request,
        }

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
        if event != "disconnect":
            return result
        if self.on_client_gone is not None:
            self.on_client_gone(len(self.sockets))  # engine.io's socket triggers it once
        if args[1:2] == (self.reason.CLIENT_DISCONNECT,):
            # A long-polling client closed: python-engineio leaves the GET it has pending
            # open until the ping times out (the client's disconnect() waits for it, and the
            # server holds the request that long). Answer it now, as Node's engine.io does;
            # the queue's None makes engine.io's poll return nothing. No public hook sees a
            # client's close, hence the engine.io server's own event dispatch.
            socket = self.sockets.get(args[0])
            if socket is not None and not socket.upgraded:
                socket.queue.put_nowait(None)
        return result

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        if self.max_packets is None or self.max_bytes is None or self.on_overflow is None:
            return super().create_queue(*args, **kwargs)
        return OutgoingQueue(
            max_packets=self.max_packets,
            max_bytes=self.max_bytes,
            on_overflow=self.on_overflow,
            frame_of=text_frame,
        )
