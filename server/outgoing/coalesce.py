"""Frames for one connection within one pass of the event loop go out in one write.

A batch from a worker holds up to ten events (SQS_BATCH_SIZE), and the history emits them one
after the other in one stretch of the event loop. Written as they come, a client in the rooms
of all ten gets ten `transport.write` calls, ten system calls, and on loopback ten passes
through the kernel's TCP stack: with a handful of clients, the kernel's part is a third of the
server's CPU per message. :class:`FrameCoalescer` holds each connection's frames until the
loop's next pass (`loop.call_soon`), then hands them to the transport in one `writelines`
(one `writev` under uvloop).

What it costs and what bounds it:

- **Latency**: a frame waits at most until the end of the stretch that made it, and never
  behind more than `max_held` frames in all: past that, everything held is written at once.
  A broadcast to thousands of clients is written in slices of `max_held` frames.
- **Memory**: what is held is references to frames that are made once for all their
  recipients (server/adapters/frame_websocket.py), at most `max_held` of them.
- **Order**: a connection writes what it holds before anything else goes to its transport
  (server/adapters/wsprotocol.py: its own sends, the replies its reads trigger, its close).

Usage (the connection's side is :class:`HoldsFrames`)::

    coalescer = FrameCoalescer()
    coalescer.hold(connection, frame, loop)    # written at the loop's next pass, or sooner
"""

from __future__ import annotations

import asyncio
from typing import Protocol

#: Frames held in all before they are written at once: about 7 ms of a broadcast's fan-out.
MAX_HELD_FRAMES = 1024


class HoldsFrames(Protocol):
    """A connection whose frames a :class:`FrameCoalescer` holds."""

    def hold_frame(self, frame: bytes) -> bool:
        """Keep `frame` to write later; True if it is the first one kept since the last write."""

    def write_held(self) -> None:
        """Write what is kept, if anything, in one call."""


class FrameCoalescer:
    """Holds frames per connection until the event loop's next pass, then writes each
    connection's in one call."""

    def __init__(self, max_held: int = MAX_HELD_FRAMES) -> None:
        self.max_held = max_held
        self._holding: list[HoldsFrames] = []  # connections with frames kept, in first-frame order
        self._held = 0
        self._scheduled = False

    def hold(self, connection: HoldsFrames, frame: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """Keep `frame` for `connection`, to be written at the loop's next pass (or now, once
        `max_held` frames are kept)."""
        if connection.hold_frame(frame):
            self._holding.append(connection)
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._scheduled_flush)
        self._held += 1
        if self._held >= self.max_held:
            self.flush()

    def flush(self) -> None:
        """Write every connection's kept frames now."""
        holding, self._holding, self._held = self._holding, [], 0
        for connection in holding:
            connection.write_held()

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()
