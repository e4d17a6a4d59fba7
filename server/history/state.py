"""State rooms (STATE_ROOMS): the latest event per key, for whoever joins next.

A state room keeps, beside its replay history, its latest event per envelope ``key`` (one
entry, under the empty key, for events without one), at most STATE_MAX_KEYS and
STATE_MAX_BYTES of them (the oldest by offset go first). A client that joins it without a
position gets them at once, oldest first, each with its own offset, then every live event
above the stream's position: the join's catch-up (server/sessions/handlers.py) does the rest,
as after a resume. An envelope ``version`` guards a key's state: an event whose version is not
above the held one's skips that room.

:class:`LocalState` is one server's (in memory); cluster mode keeps the same in Redis, in the
append script (server/history/lua/append.lua) and read by ``lua/state.lua``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from server.history.replay import Stream
from shared.envelope import RESERVED_PREFIX


def state_room(patterns: tuple[str, ...] | list[str], room: str | None) -> bool:
    """Whether `room` is a state room: a name or prefix pattern of STATE_ROOMS matches it."""
    if room is None or room.startswith(RESERVED_PREFIX):
        return False
    return any(
        room.startswith(pattern[:-1]) if pattern.endswith("*") else room == pattern
        for pattern in patterns
    )


@dataclass(frozen=True, slots=True)
class Held:
    """One key's latest event in a state room."""

    offset: int
    event: str
    payload: Any
    version: int | None
    size: int


class LocalState:
    """Every state room's latest events on one server.

    Usage::

        state = LocalState(max_keys=1000, max_bytes=1 << 20, max_total_bytes=16 << 20)
        if state.newer(stream, key, version): ...; state.keep(stream, key, held)
        entries = state.latest(stream)   # oldest first
    """

    def __init__(self, *, max_keys: int, max_bytes: int, max_total_bytes: int) -> None:
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        self._max_total = max_total_bytes
        # stream -> key -> held, oldest first; streams least recently updated first
        self._rooms: OrderedDict[Stream, OrderedDict[str, Held]] = OrderedDict()
        self._bytes: dict[Stream, int] = {}
        self._total = 0

    def newer(self, stream: Stream, key: str, version: int | None) -> bool:
        """Whether an event of `version` may replace what the room holds for `key`."""
        room = self._rooms.get(stream)
        held = room.get(key) if room is not None else None
        return version is None or held is None or held.version is None or version > held.version

    def keep(self, stream: Stream, key: str, held: Held) -> None:
        room = self._rooms.setdefault(stream, OrderedDict())
        self._rooms.move_to_end(stream)
        old = room.pop(key, None)
        room[key] = held
        self._add(stream, held.size - (old.size if old else 0))
        while len(room) > 1 and (
            len(room) > self._max_keys or self._bytes[stream] > self._max_bytes
        ):
            _, dropped = room.popitem(last=False)
            self._add(stream, -dropped.size)
        # Bounded over every room too (REPLAY_MAX_BYTES): the least recently updated go first.
        while self._total > self._max_total and len(self._rooms) > 1:
            oldest, entries = next(iter(self._rooms.items()))
            if oldest == stream:
                break
            self._rooms.pop(oldest)
            self._add(oldest, -sum(h.size for h in entries.values()))
            self._bytes.pop(oldest, None)

    def _add(self, stream: Stream, size: int) -> None:
        self._bytes[stream] = self._bytes.get(stream, 0) + size
        self._total += size

    def latest(self, stream: Stream) -> list[Held]:
        """The room's latest events, oldest first."""
        room = self._rooms.get(stream)
        return sorted(room.values(), key=lambda held: held.offset) if room is not None else []
