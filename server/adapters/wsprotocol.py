"""uvicorn's websocket protocol for the relay: a write timeout, and whole frames written
directly for the fan-out.

uvicorn takes a protocol class of one's own through its `ws` setting. This one is its
websockets-sansio protocol (what its "auto" picks) with these additions:

- **A write timeout.** A client that takes no frame for `CLIENT_WRITE_TIMEOUT_S` has its
  TCP connection aborted, so that what the kernel buffers for it (megabytes on loopback) and
  the writer that waits on it are freed: uvicorn itself waits for a stuck socket forever,
  even to send a close. The outgoing queue (server/outgoing/queue.py) bounds
  memory; this bounds time. A client that does not answer the close it was sent (within
  uvicorn's 10 s close timeout) is reset the same way: uvicorn closes such a connection
  without telling the app, and waits for it to flush. (uvicorn's own WebSocket ping is off,
  server/__main__.py: engine.io's heartbeat finds a client that is gone.)
- **Frames from the fan-out** (server/adapters/fanout.py): the protocol offers itself in the
  ASGI scope's extensions as a :class:`~server.outgoing.frames.FrameWriter`, which
  writes a frame made once for all recipients while the connection is open and its
  transport below the high-water mark. With a coalescer (server/outgoing/coalesce.py),
  the frames a connection gets in one pass of the event loop go out in one `writelines`;
  whatever else the protocol writes (its sends, the replies its reads make, its close) writes
  those first.
- **PONGs that do not wake the app.** While the client's engine.io socket has set
  `on_pong` (server/adapters/transport.py), a text frame that is exactly engine.io's PONG ("3")
  calls it instead of going through the ASGI receive queue: the app's reader stays in its
  one wait, and a client that only keeps its connection alive costs no task, coroutine or
  future per ping interval.
- **Less held per connection.** uvicorn's receive queue and flow-control event are
  :mod:`server.lean`'s (asyncio's allocate about 3.7 KB of deques up front), and the
  handshake's request and response, and the copies of its headers (about 3 KB), are let go
  once the handshake is answered: nothing reads them after.
- **Oversized messages counted.** A message past uvicorn's `ws_max_size`
  (`CLIENT_MESSAGE_MAX_BYTES`) closes the connection with 1009 as soon as its frame header
  says so, before its payload is buffered (websockets' parser); that refusal is counted and
  logged once per address per interval (server/adapters/refusals.py).
- **No log line per connection at INFO.** uvicorn logs every accepted WebSocket, and the
  websockets library every connection opened and closed, on the `uvicorn.error` logger at
  INFO: two lines per connect and one per disconnect (10,056 lines for a 5,000-client storm,
  and about a sixth of a connect's CPU). :func:`quiet_connection_lines` moves these to DEBUG
  (LOG_LEVEL=DEBUG shows them); refusals, errors and uvicorn's own start-up lines stay. The
  relay's `relay_connected_clients` gauge says how many are connected.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import State

from server.adapters.refusals import Refusals, address_of
from server.lean import LeanEvent, LeanQueue
from server.outgoing.coalesce import FrameCoalescer
from server.outgoing.frames import FRAMES_EXTENSION
from shared import counters as c

logger = logging.getLogger(__name__)

#: engine.io's PONG packet, the whole of a client's heartbeat answer
ENGINEIO_PONG = b"3"


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    write_timeout_s: float = 10.0
    on_pong: Callable[[], None] | None = None  # set by the client's engine.io socket
    refusals: Refusals | None = None
    coalescer: FrameCoalescer | None = None  # None: each frame written as it comes
    _refused: bool = False
    _held: list[bytes] | None = None  # frames the coalescer holds, in order

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn uses its receive queue's put_nowait, get and empty, and its event's set,
        # clear and wait: the lean ones do the same without their deques (server/lean.py).
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.write_held()  # what it reads may make it write (a PONG, a close)
        super().data_received(data)
        if isinstance(self.conn.parser_exc, PayloadTooBig) and not self._refused:
            self._refused = True  # websockets' parser stops at the first: counted once
            if self.refusals is not None:
                self.refusals.refuse(
                    c.CLIENT_MESSAGES_TOO_BIG,
                    address_of(self.client),
                    f"closed a WebSocket (1009) whose message passed "
                    f"{self.config.ws_max_size} bytes (CLIENT_MESSAGE_MAX_BYTES)",
                )

    def handle_text(self, event: Frame) -> None:
        on_pong = self.on_pong
        if on_pong is not None and event.fin and event.data == ENGINEIO_PONG:
            if not self.close_sent:  # past the app's close, uvicorn drops messages too
                on_pong()
            return
        super().handle_text(event)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none for a refused handshake
        if scope is not None:
            # The app's task is created but has not run yet: it sees the extension.
            scope.setdefault("extensions", {})[FRAMES_EXTENSION] = self

    def write_frame(self, frame: bytes) -> bool:
        """Write a whole websocket frame if the connection is open and its transport takes
        more (at the event loop's next pass, with the connection's other frames of this pass,
        when a coalescer is set); False (nothing written) otherwise."""
        if not (
            self.writable.is_set()
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and self.conn.state is State.OPEN
            and not self.transport.is_closing()
        ):
            return False
        if self.coalescer is None:
            self.transport.write(frame)
        else:
            self.coalescer.hold(self, frame, self.loop)
        return True

    def hold_frame(self, frame: bytes) -> bool:
        held = self._held
        if held is None:
            self._held = [frame]
            return True
        held.append(frame)
        return False

    def write_held(self) -> None:
        """Write the frames the coalescer holds for this connection, in one call. Everything
        else this protocol writes (its sends, the replies to what it reads, its close) calls
        this first, so that nothing overtakes a held frame."""
        held = self._held
        if held is None:
            return
        self._held = None
        if self.disconnected or self.transport.is_closing():
            return  # gone meanwhile: so is every frame written to it and not yet read
        if len(held) == 1:
            self.transport.write(held[0])
        else:
            self.transport.writelines(held)

    def connection_lost(self, exc: Exception | None) -> None:
        self._held = None
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self.write_held()  # before the close frame
        super().shutdown()

    async def send(self, message: Any) -> None:
        self.write_held()
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
                self.reset()  # connection_lost() follows: the send below raises
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Answered: nothing reads the handshake's request, its response or the scope's
            # headers again (the app made its request environ from them at the connect).
            # websockets' parser keeps the request object for the connection's life; its
            # headers need not stay in it.
            self.request.headers.clear()
            self.scope["headers"] = []
            self.request = self.response = None  # type: ignore[assignment]
        elif message["type"] == "websocket.close" and self.close_timer is not None:
            # uvicorn's timer for the client's close reply ends in a plain close
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.reset)

    def reset(self) -> None:
        """Abort the connection with a TCP reset (linger 0): the kernel drops what it still
        holds for the client now, where a plain close would keep trying to deliver it,
        megabytes to a client that may never read again; `connection_lost()` follows and
        tells the app. Also where the client has not answered the close: a plain close
        waits for the transport to flush, for ever if the client stopped reading."""
        self.close_timer = None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


#: The format strings of uvicorn's and websockets' lines per connection. uvicorn's is in the
#: adapters' contract; websockets' moved between the versions supported (13.0 logs "connection
#: open" in ServerProtocol.accept, 17.4 in send_response), so theirs are not: if a text
#: changes, that line is simply logged at INFO again.
CONNECTION_LINES = frozenset(
    {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
)


class _ConnectionLinesAtDebug(logging.Filter):
    """On `uvicorn.error`: a line per connection is a DEBUG line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in CONNECTION_LINES:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_connection_lines() -> None:
    """Log uvicorn's and websockets' lines per WebSocket connection at DEBUG, not INFO."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ConnectionLinesAtDebug) for f in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_ConnectionLinesAtDebug())


def websocket_protocol(
    write_timeout_s: float,
    refusals: Refusals | None = None,
    coalescer: FrameCoalescer | None = None,
) -> type[WebSocketsSansIOProtocol]:
    """The relay's websocket protocol class, for uvicorn's `ws` setting; its connections
    share `coalescer` (None: no frame is held)."""
    return type(
        "RelayWebSocketProtocol",
        (_WebSocketProtocol,),
        {"write_timeout_s": write_timeout_s, "refusals": refusals, "coalescer": coalescer},
    )
