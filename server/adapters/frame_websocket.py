"""engine.io's websocket with the direct frame path: a text packet's websocket frame, made
once for all its recipients, and the ASGI websocket that carries the connection's frame
writer to the client's socket.

A server's websocket frames are unmasked (the client side masks; a server never does,
RFC 6455 5.1), so one packet's frame is the same bytes for every websocket client. A
permessage-deflate connection takes an uncompressed frame too (RFC 7692 6: the RSV1 bit says
per message whether it is compressed), so the frame needs no per-client encoding.
"""

from __future__ import annotations

from typing import Any

from engineio import packet as eio_packet
from engineio.async_drivers.asgi import WebSocket
from websockets.frames import Frame, Opcode

from server.outgoing.frames import FRAMES_EXTENSION, FrameWriter


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
    outgoing queue (server/adapters/transport.py).

    Usage: the 'websocket' entry of the engine.io server's driver table
    (server/adapters/engineio_server.py's `BoundedEngineIO`); engine.io's ASGI driver builds
    one per connection.
    """

    frame_writer: FrameWriter | None = None
    client: Any = None  # the ASGI scope's (host, port), for what is logged of the client

    async def __call__(self, environ: dict[str, Any]) -> Any:
        scope = environ.get("asgi.scope", {})
        extensions = scope.get("extensions") or {}
        self.frame_writer = extensions.get(FRAMES_EXTENSION)
        self.client = scope.get("client")
        return await super().__call__(environ)
