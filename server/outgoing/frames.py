"""The frame writer: how a client's websocket connection takes whole frames from the fan-out.

The websocket protocol (server/adapters/wsprotocol.py) offers itself under
:data:`FRAMES_EXTENSION` in the ASGI scope's extensions; engine.io's websocket
(server/adapters/frame_websocket.py) carries it to the client's socket
(server/adapters/transport.py), which attaches it to the client's outgoing queue
(server/outgoing/queue.py) while the websocket is its transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

#: The ASGI scope extension under which the websocket protocol offers its frame writer.
FRAMES_EXTENSION = "relay.websocket.frames"


class FrameWriter(Protocol):
    """What :data:`FRAMES_EXTENSION` holds: a connection that takes whole websocket frames,
    and hands the client's engine.io PONGs to `on_pong` while it is set."""

    on_pong: Callable[[], None] | None

    def write_frame(self, frame: bytes) -> bool:
        """Write `frame` now if the connection can take it; False if not (nothing written)."""


@runtime_checkable
class CarriesFrames(Protocol):
    """An engine.io websocket that carries its connection's frame writer (None: the ASGI
    server offers none)."""

    frame_writer: FrameWriter | None


@runtime_checkable
class TakesFrameWriter(Protocol):
    """A client's outgoing queue that writes straight to an attached frame writer."""

    def attach_writer(self, writer: FrameWriter | None) -> None: ...


@runtime_checkable
class SendsPacketsNow(Protocol):
    """An engine.io server with a send for the fan-out that needs no coroutine per recipient."""

    def send_packet_now(self, sid: str, pkt: Any, now: float) -> None: ...
