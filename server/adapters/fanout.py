"""One emit, many clients: python-socketio's manager, which encodes each event once and
hands the same packet to every recipient, and which knows each client's rooms.

Stock python-socketio spends its CPU per recipient, not per event: `AsyncManager.emit`
starts one asyncio task per recipient; each puts the packet in the client's engine.io queue
and wakes that client's writer task; the writer encodes it, hands it to the ASGI `send`, and
uvicorn frames it again for each client. Here the work per recipient is a few lookups and,
for a websocket client with nothing waiting, bytes made once handed to its connection, which
writes what it got in one pass of the event loop in one call (server/outgoing/coalesce.py):

- :class:`FanoutManager` (python-socketio's `client_manager` hook) encodes the Socket.IO and
  the engine.io packet once and puts the same packet in each recipient's queue, without a
  task per recipient (through `send_packet_now`, server/adapters/engineio_server.py).
- The client's outgoing queue (server/outgoing/queue.py) writes the packet's frame
  (:func:`~server.adapters.frame_websocket.text_frame`, made once per packet) straight to
  the connection when nothing else is queued for that client and its writer is idle, so the
  order of what a client receives is unchanged; otherwise, and for long-polling clients, the
  packet waits in the queue and the socket's writer sends it.
- The connection's frame writer (server/outgoing/frames.py) gets there from uvicorn's
  protocol (server/adapters/wsprotocol.py), through engine.io's websocket
  (server/adapters/frame_websocket.py) and the client's socket (server/adapters/transport.py),
  which attaches it to its queue while the websocket is its transport.

Bounded all the same: a frame is written only while the connection's transport is below its
write-buffer high-water mark; a client that stops reading falls back to its bounded queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.conforms import conforms
from server.outgoing.frames import SendsPacketsNow


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, whose emit without a callback encodes once and puts the
    same engine.io packet(s) in each recipient's queue with no task per recipient, and which
    knows each client's rooms.

    python-socketio finds a leaving client's rooms by testing every room of the namespace,
    and every client is a room of its own: one disconnect costs O(clients), and many
    clients dropping at once (a network blip) O(clients^2), all of it holding the event
    loop. Here every room entered or left (python-socketio does both only through
    `basic_enter_room` and `basic_leave_room`) is also kept per client, and a disconnect
    leaves just those: O(its rooms).

    Usage: ``AsyncServer(client_manager=FanoutManager(), ...)`` on an engine.io server with
    ``send_packet_now`` (server/adapters/engineio_server.py's `BoundedEngineIO`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}  # (namespace, sid) -> rooms
        # The engine.io server's direct send, looked up once per server: a runtime protocol
        # check costs microseconds, too much for every emit.
        self._checked_eio: Any = None
        self._send_now: Callable[[str, Any, float], None] | None = None

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._rooms_of.get((namespace, sid), ()) if r is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # What python-socketio's own does, with the client's rooms looked up, not searched.
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def _direct_send(self) -> Callable[[str, Any, float], None] | None:
        eio = self.server.eio
        if eio is not self._checked_eio:
            self._checked_eio = eio
            self._send_now = eio.send_packet_now if conforms(eio, SendsPacketsNow) else None
        return self._send_now

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        send_now = self._direct_send()
        if callback is not None or send_now is None:  # each recipient gets its own ack id
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        # as python-socketio: a tuple is several arguments, None is none
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]  # binary: several
        packets = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in parts]
        now = time.time()
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip:
                for pkt in packets:
                    send_now(eio_sid, pkt, now)
