"""One emit, many clients: each event is encoded and framed once, and written straight to
every websocket client that has nothing else waiting.

Stock python-socketio spends its CPU per recipient, not per event: `AsyncManager.emit`
starts one asyncio task per recipient; each puts the packet in the client's engine.io queue
and wakes that client's writer task; the writer encodes it, hands it to the ASGI `send`, and
uvicorn frames it again for each client. A server's websocket frames are unmasked, so one
event's frame is the same bytes for every websocket client (the client side masks; a server
never does, RFC 6455 5.1). Here the work per recipient is a few lookups and one
`transport.write` of bytes made once:

- :class:`FanoutManager` (python-socketio's `client_manager` hook) encodes the Socket.IO and
  the engine.io packet once and puts the same packet in each recipient's queue, without a
  task per recipient.
- The queue (server/adapters/outgoing.py) writes the packet's frame (:func:`text_frame`, made once
  per packet) straight to the connection when nothing else is queued for that client and
  its writer is idle, so the order of what a client receives is unchanged; otherwise, and
  for long-polling clients, the packet waits in the queue as before and the socket's
  writer sends it.
- uvicorn's protocol (server/adapters/wsprotocol.py) advertises that it can take whole frames as an
  ASGI scope extension, :data:`FRAMES_EXTENSION`; :class:`FrameWebSocket`, the websocket
  class engine.io's ASGI driver builds per connection, carries it to the client's socket
  (server/adapters/transport.py), which attaches it to its queue while the websocket is its
  transport.

A permessage-deflate connection takes an uncompressed frame too (RFC 7692 6: the RSV1 bit
says per message whether it is compressed), so the frame needs no per-client encoding.

Bounded as before: a frame is written only while the connection's transport is below its
write-buffer high-water mark; a client that stops reading falls back to its bounded queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import socketio
from engineio import packet as eio_packet
from engineio.async_drivers.asgi import WebSocket
from socketio import packet as sio_packet
from websockets.frames import Frame, Opcode

#: The ASGI scope extension under which the websocket protocol offers its frame writer.
FRAMES_EXTENSION = "relay.websocket.frames"


class FrameWriter(Protocol):
    """What :data:`FRAMES_EXTENSION` holds: a connection that takes whole websocket frames,
    and hands the client's engine.io PONGs to `on_pong` while it is set."""

    on_pong: Callable[[], None] | None

    def write_frame(self, frame: bytes) -> bool:
        """Write `frame` now if the connection can take it; False if not (nothing written)."""


def text_frame(pkt: eio_packet.Packet) -> bytes:
    """The websocket frame of a text engine.io packet: made once, kept on the packet (which
    python-socketio shares between recipients, as engine.io's own `encode` cache does)."""
    frame: bytes | None = getattr(pkt, "relay_frame", None)
    if frame is None:
        encoded = pkt.encode().encode()
        frame = Frame(Opcode.TEXT, encoded).serialize(mask=False)
        pkt.relay_frame = frame
    return frame


class FrameWebSocket(WebSocket):  # type: ignore[misc]
    """engine.io's ASGI websocket, which carries the connection's frame writer (when the
    ASGI server offers one) as `frame_writer`, for the client's socket to attach to its
    outgoing queue (server/adapters/transport.py)."""

    frame_writer: FrameWriter | None = None

    async def __call__(self, environ: dict[str, Any]) -> Any:
        extensions = environ.get("asgi.scope", {}).get("extensions") or {}
        self.frame_writer = extensions.get(FRAMES_EXTENSION)
        return await super().__call__(environ)


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, whose emit without a callback encodes once and puts the
    same engine.io packet(s) in each recipient's queue with no task per recipient, and which
    knows each client's rooms.

    python-socketio finds a leaving client's rooms by testing every room of the namespace,
    and every client is a room of its own: one disconnect costs O(clients), so 10,000
    clients dropping at once (a network blip) held the event loop for 7.9 s (0.09 s here,
    measured on the manager alone on the 2-core machine). Here every
    room entered or left (python-socketio does both only through `basic_enter_room` and
    `basic_leave_room`) is also kept per client, and a disconnect leaves just those.

    Usage: ``AsyncServer(client_manager=FanoutManager(), ...)`` on an engine.io server with
    ``send_packet_now`` (server/adapters/outgoing.py's `BoundedEngineIO`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}  # (namespace, sid) -> rooms

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
        send_now = getattr(self.server.eio, "send_packet_now", None)
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
