"""Replay on reconnect: recently emitted events per stream, bounded by age, count and bytes.

A stream is a namespace plus a room (``None``: every client of the namespace). Each emitted
event gets the next offset of its stream and the server's epoch, a random token made at
start: offsets from another epoch mean nothing here. A client that presents its last offset
gets what it missed, in order, or a :class:`RecoveryFailed` with the reason.
Node's socket.io calls this connection-state recovery; python-socketio has none.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.history.reasons import ahead_of_stream, offset_error, restarted

Stream = tuple[str, str | None]  # (namespace, room)

#: Offsets of this many streams are remembered (oldest forgotten first): a bound on memory
#: however many rooms producers invent. A forgotten stream that comes back starts above every
#: offset any forgotten stream had, so offsets never repeat within an epoch, and a client
#: that resumes from an offset of its old life is told that recovery failed.
MAX_STREAMS = 100_000


class RecoveryFailed(Exception):
    """The client cannot be brought up to date; ``reason`` says why. It must resync."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Shared:
    """Bytes several entries share (one message's data, emitted to several rooms): counted
    once while any of them is kept."""

    size: int
    refs: int = 0


@dataclass(slots=True)
class Entry:
    stream: Stream
    offset: int
    event: str
    payload: Any  # the payload dict, or (cluster mode) its JSON as an orjson.Fragment
    size: int
    at: float
    shared: Shared | None = None
    evicted: bool = field(default=False)

    @property
    def bytes(self) -> int:
        """What replaying it sends: its own size plus the data it shares."""
        return self.size + (self.shared.size if self.shared else 0)


class ReplayBuffer:
    """The replayable history of every stream.

    Usage, all on the event loop and without awaiting in between, so that an event is in the
    buffer before any client gets it (a resuming client then finds it here or live, never
    neither)::

        offset = buffer.next_offset(stream)
        buffer.append(stream, offset, event, payload, size, shared)
        await sio.emit(...)                          # the event carries offset and epoch
        missed = buffer.since(stream, epoch, last)   # or RecoveryFailed

    Memory is bounded: `max_bytes` over all streams (shared data counted once),
    `max_events` per stream, `window_s` of age, `MAX_STREAMS` offsets, and the entries held
    for ordering are compacted so that they never outnumber the live ones by much.
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
        self._floor = 0  # the highest offset any forgotten stream reached
        self._order: deque[Entry] = deque()  # every kept entry, oldest first, plus husks
        self._husks = 0  # entries in _order already dropped from their stream
        self.bytes = 0

    def reset(self, epoch: str) -> None:
        """Forget everything and number from a new epoch (cluster mode: the shared history's
        epoch changed, server/history/cluster.py)."""
        self.epoch = epoch
        self._streams.clear()
        self._last.clear()
        self._order.clear()
        self._floor = self._husks = self.bytes = 0

    def known_offset(self, stream: Stream) -> int | None:
        """The stream's last offset if this buffer has seen the stream, else None."""
        return self._last.get(stream)

    def after(self, stream: Stream, offset: int) -> list[Entry]:
        """The kept entries above `offset`, oldest first, without asking whether the offset
        was this buffer's to give (cluster mode: the shared history gave it).
        RecoveryFailed if some entries above it are no longer kept."""
        self._expire()
        entries = self._streams.get(stream, deque())
        newer = [entry for entry in entries if entry.offset > offset]
        last = self._last.get(stream, offset)
        oldest = newer[0].offset if newer else last + 1
        if last > offset and oldest > offset + 1:
            raise RecoveryFailed(
                f"offset {offset} is out of this server's replay window (oldest kept is {oldest})"
            )
        return newer

    @property
    def entries_held(self) -> int:
        """Entries in memory, including dropped ones still waiting in the age order."""
        return len(self._order)

    def last_offset(self, stream: Stream) -> int:
        return self._last.get(stream, self._floor)

    def next_offset(self, stream: Stream) -> int:
        return self.last_offset(stream) + 1

    def append(
        self,
        stream: Stream,
        offset: int,
        event: str,
        payload: Any,
        size: int,
        shared: Shared | None = None,
    ) -> None:
        """Record an event about to be emitted; its offset becomes the stream's last."""
        self._last[stream] = offset
        self._last.move_to_end(stream)
        while len(self._last) > MAX_STREAMS:
            forgotten, last = self._last.popitem(last=False)
            self._floor = max(self._floor, last)
            for entry in self._streams.pop(forgotten, ()):
                self._drop(entry)
        if self._max_events and self._max_bytes and self._window_s:
            entry = Entry(stream, offset, event, payload, size, self._clock(), shared)
            entries = self._streams.setdefault(stream, deque())
            entries.append(entry)
            self._order.append(entry)
            self.bytes += size
            if shared is not None:
                if shared.refs == 0:
                    self.bytes += shared.size
                shared.refs += 1
            while len(entries) > self._max_events:
                self._drop(entries.popleft())
        self._expire()

    def recent(self, stream: Stream, count: int) -> list[Entry]:
        """The stream's newest `count` entries still kept, oldest first."""
        self._expire()
        entries = self._streams.get(stream, deque())
        return list(entries)[-count:] if count > 0 else []

    def since(self, stream: Stream, epoch: object, offset: object) -> list[Entry]:
        """The entries after `offset`, oldest first; RecoveryFailed if that is not possible."""
        self._expire()
        if epoch != self.epoch:
            raise RecoveryFailed(restarted(epoch, self.epoch))
        if (error := offset_error(offset)) is not None or not isinstance(offset, int):
            raise RecoveryFailed(str(error))
        last = self.last_offset(stream)
        if offset > last:
            raise RecoveryFailed(ahead_of_stream(offset, last))
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
            if entry.evicted:
                self._husks -= 1
            else:
                entries = self._streams[entry.stream]
                entries.popleft()  # streams and the global order share one oldest-first order
                if not entries:
                    del self._streams[entry.stream]
                self._drop(entry, in_order=False)
        if self._husks > max(1024, len(self._order) // 2):
            # A quiet old entry at the front keeps the husks of every hotter stream behind
            # it: compact, so that what is held stays within a factor of what is counted.
            self._order = deque(entry for entry in self._order if not entry.evicted)
            self._husks = 0

    def _drop(self, entry: Entry, *, in_order: bool = True) -> None:
        if entry.evicted:
            return
        entry.evicted = True
        entry.payload = {}
        self.bytes -= entry.size
        if entry.shared is not None:
            entry.shared.refs -= 1
            if entry.shared.refs == 0:
                self.bytes -= entry.shared.size
        if in_order:
            self._husks += 1
