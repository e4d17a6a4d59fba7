"""Replay on reconnect: recently emitted events per stream, bounded by age, count and bytes.

A stream is a namespace plus a room (``None``: every client of the namespace). Each emitted
event gets the next offset of its stream (1, 2, ...) and the server's epoch, a random token
made at start: offsets from another epoch mean nothing here. A client that presents its
last offset gets what it missed, in order, or a :class:`RecoveryFailed` with the reason.
Node's socket.io calls this connection-state recovery; python-socketio has none.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Stream = tuple[str, str | None]  # (namespace, room)

#: Offsets of this many streams are remembered (oldest forgotten first): a bound on memory
#: however many rooms producers invent. A forgotten stream starts again at offset 1, and a
#: client that resumes it is told that recovery failed.
MAX_STREAMS = 100_000


class RecoveryFailed(Exception):
    """The client cannot be brought up to date; ``reason`` says why. It must resync."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Entry:
    stream: Stream
    offset: int
    event: str
    payload: dict[str, Any]
    size: int
    at: float
    evicted: bool = field(default=False)


class ReplayBuffer:
    """The replayable history of every stream, and a lock per stream.

    >>> buffer = ReplayBuffer(window_s=120, max_events=1000, max_bytes=16 << 20)
    >>> async with buffer.lock:
    ...     offset = buffer.next_offset(stream)
    ...     await sio.emit(...)                     # the event carries offset and epoch
    ...     buffer.append(stream, offset, event, payload, size)
    >>> buffer.since(stream, epoch, last_offset)    # the missed entries, or RecoveryFailed

    Emitting and resuming both hold the lock, so that a resuming client gets the missed
    events first and live ones after, never interleaved. Memory is bounded: `max_bytes` over
    all streams, `max_events` per stream, `window_s` of age, and `MAX_STREAMS` offsets.
    """

    def __init__(
        self,
        *,
        window_s: float,
        max_events: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epoch = secrets.token_hex(6)
        self._window_s = window_s
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._clock = clock
        self._streams: dict[Stream, deque[Entry]] = {}
        self._last: OrderedDict[Stream, int] = OrderedDict()
        self._lock = asyncio.Lock()
        self._order: deque[Entry] = deque()
        self.bytes = 0

    @property
    def lock(self) -> asyncio.Lock:
        """Held while emitting and while replaying. One lock for all streams: the subscriber
        emits one event at a time anyway, and a lock per stream would be memory that clients
        could grow by naming rooms."""
        return self._lock

    def last_offset(self, stream: Stream) -> int:
        return self._last.get(stream, 0)

    def next_offset(self, stream: Stream) -> int:
        return self.last_offset(stream) + 1

    def append(
        self, stream: Stream, offset: int, event: str, payload: dict[str, Any], size: int
    ) -> None:
        """Record an emitted event; its offset becomes the stream's last."""
        self._last[stream] = offset
        self._last.move_to_end(stream)
        while len(self._last) > MAX_STREAMS:
            forgotten, _ = self._last.popitem(last=False)
            for entry in self._streams.pop(forgotten, ()):
                self._drop(entry)
        if self._max_events and self._max_bytes and self._window_s:
            entry = Entry(stream, offset, event, payload, size, self._clock())
            entries = self._streams.setdefault(stream, deque())
            entries.append(entry)
            self._order.append(entry)
            self.bytes += size
            while len(entries) > self._max_events:
                self._drop(entries.popleft())
        self._expire()

    def since(self, stream: Stream, epoch: object, offset: object) -> list[Entry]:
        """The entries after `offset`, oldest first; RecoveryFailed if that is not possible."""
        self._expire()
        if epoch != self.epoch:
            raise RecoveryFailed(
                f"epoch {epoch!r:.40} is not this server's ({self.epoch}): it restarted since"
            )
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise RecoveryFailed(f"offset must be a non-negative integer, got {offset!r:.40}")
        last = self.last_offset(stream)
        if offset > last:
            raise RecoveryFailed(f"offset {offset} is ahead of the stream (last is {last})")
        entries = self._streams.get(stream, deque())
        oldest = entries[0].offset if entries else last + 1
        if offset + 1 < oldest:
            raise RecoveryFailed(
                f"offset {offset} is out of the replay window (oldest kept is {oldest})"
            )
        return [entry for entry in entries if entry.offset > offset]

    def _expire(self) -> None:
        horizon = self._clock() - self._window_s
        while self._order and (
            self._order[0].evicted or self._order[0].at < horizon or self.bytes > self._max_bytes
        ):
            entry = self._order.popleft()
            if not entry.evicted:
                entries = self._streams[entry.stream]
                entries.popleft()  # streams and the global order share one oldest-first order
                if not entries:
                    del self._streams[entry.stream]
                self._drop(entry)

    def _drop(self, entry: Entry) -> None:
        if not entry.evicted:
            entry.evicted = True
            entry.payload = {}  # the husk waits in the global order; the payload need not
            self.bytes -= entry.size
