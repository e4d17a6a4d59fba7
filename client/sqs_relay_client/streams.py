"""What a client keeps to resume: each stream's position (epoch and highest offset seen), the
ids it recently delivered, so that a replay or a redelivery reaches the app once, and which
rooms the server subscribed it to (the user's stream, the token's subscribe claim), so that
their positions go in the connect's ``auth``.

No I/O here: :class:`~client.relay_client.RelayClient` feeds it what arrives and asks it
where to resume from. The page's helper (`server/web/static/relay.js`) keeps the same state the
same way.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqs_relay_client.protocol import RESUME_RETRY

Room = str | None  # None: the events of the namespace that have no room

#: Ids remembered per client by default: a bound on memory, far more than one replay window's
#: worth of redeliveries at the rates a client can take.
MAX_IDS = 10_000


@dataclass(frozen=True, slots=True)
class Position:
    """Where a stream stands: ``offset`` of its last event in the server run ``epoch``."""

    epoch: str
    offset: int

    def as_since(self) -> dict[str, Any]:
        """The ``since`` object of the resume protocol."""
        return {"epoch": self.epoch, "offset": self.offset}

    @classmethod
    def of(cls, message: Any) -> Position | None:
        """The position an event or an answer carries, or None if it carries none."""
        if not isinstance(message, dict):
            return None
        epoch, offset = message.get("epoch"), message.get("offset")
        if not isinstance(epoch, str) or not isinstance(offset, int) or isinstance(offset, bool):
            return None
        return cls(epoch, offset)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What came of resuming one stream after a reconnect.

    ``recovered`` False means events were missed for good (the server restarted, or the gap
    was longer than its replay window or budget): the app must resync that stream's state
    from its own source of truth. ``reason`` says why; ``replayed`` counts what was sent again.
    """

    room: Room
    recovered: bool
    replayed: int
    reason: str | None = None


class Streams:
    """Positions per stream and recently delivered ids, bounded.

    Usage::

        streams = Streams()
        if streams.accept(payload):        # every relayed event, in the order it arrived
            deliver(payload)               # new: not a repeat of something delivered
        since = streams.since(room)        # what to resume from (None: nothing yet)
        recovery = streams.answered(room, answer)   # a join answer
        auth["streams"] = streams.connect_streams()  # before each connect
        recovery = streams.recovery(payload)        # each relay:recovery of the connect
        if streams.retrying(room): ...     # "try again": resume it again, backing off

    A stream whose resume was answered "try again" (``retry``) keeps its own position, and
    until a resume is served, takes only the event right after it (the next offset of its
    epoch): a live event above a gap is dropped, and the served resume sends it again after
    what was missed.
    """

    def __init__(self, *, max_ids: int = MAX_IDS) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self._max_ids = max_ids
        self._positions: dict[Room, Position] = {}
        self._ids: OrderedDict[tuple[Room, str], None] = OrderedDict()
        # rooms the server subscribed this client to (an ordered set), and those the
        # connect under way answered for so far (None: no connect under way)
        self._subscribed: dict[str, None] = {}
        self._answered: dict[str, None] | None = None
        self._retrying: set[Room] = set()  # streams whose resume is to be asked again

    def since(self, room: Room) -> dict[str, Any] | None:
        """The ``since`` to send for `room` on a resume, or None when none is known."""
        position = self._positions.get(room)
        return position.as_since() if position else None

    def seed(self, room: Room, since: Any) -> None:
        """Start `room` from `since` (``{"epoch", "offset"}``: the position a page was rendered
        at), unless it already has a position of its own."""
        position = Position.of(since)
        if position is not None and room not in self._positions:
            self._positions[room] = position

    def position(self, room: Room) -> Position | None:
        return self._positions.get(room)

    def accept(self, payload: Any) -> bool:
        """Record an event; True if the app should get it, False if it is a repeat.

        A repeat is an event at or below its stream's position in the same epoch (offsets
        rise by one per event within an epoch, so this is exact), or one whose id this stream
        delivered recently (a redelivery under a new epoch after a server restart)."""
        if not isinstance(payload, dict):
            return True
        room = payload.get("room")
        position, known = Position.of(payload), self._positions.get(room)
        if position and known and position.epoch == known.epoch and position.offset <= known.offset:
            return False
        if room in self._retrying and not (
            position and known and position.epoch == known.epoch
            and position.offset == known.offset + 1
        ):  # fmt: skip
            return False  # above a gap not yet resumed: the served resume sends it again
        message_id = payload.get("id")
        if isinstance(message_id, str):
            key = (room, message_id)
            if key in self._ids:
                return False
            self._ids[key] = None
            while len(self._ids) > self._max_ids:
                self._ids.popitem(last=False)
        if position:
            self._positions[room] = position
        return True

    def answered(self, room: Room, answer: Any) -> Recovery | None:
        """Take the position from a connect or join answer; for a resume, what came of it.

        The answer's position is the stream's as the client entered it: live events follow
        above it. After a failed resume the stream goes on from there (the app resyncs).
        An answer that says "try again" (``retry``) is no outcome yet: None, the stream's own
        position kept, and :meth:`retrying` True until a later answer."""
        retry = isinstance(answer, dict) and answer.get(RESUME_RETRY) is True
        if retry and room in self._positions:
            self._retrying.add(room)
            return None
        # (without a position of ours to resume from, "try again" is the failure it also is)
        self._retrying.discard(room)
        position, known = Position.of(answer), self._positions.get(room)
        failed = isinstance(answer, dict) and answer.get("recovered") is False
        if position and (
            failed
            or known is None
            or known.epoch != position.epoch
            or known.offset < position.offset
        ):
            self._positions[room] = position
        if not isinstance(answer, dict) or "recovered" not in answer:
            return None
        replayed = answer.get("replayed")
        reason = answer.get("reason")
        return Recovery(
            room,
            answer["recovered"] is True,
            replayed if isinstance(replayed, int) else 0,
            reason if isinstance(reason, str) else None,
        )

    def retrying(self, room: Room) -> bool:
        """Whether `room`'s last resume was answered "try again" (and none served since)."""
        return room in self._retrying

    def forget(self, room: Room) -> None:
        """The client left `room`: a later join starts afresh instead of resuming."""
        self._retrying.discard(room)
        self._positions.pop(room, None)
        if room is not None:
            self._subscribed.pop(room, None)

    # --- streams the server subscribed the client to ---------------------------------------------
    @property
    def subscribed(self) -> list[str]:
        """The rooms the server subscribed this client to without a join (the user's stream
        ``relay:user:<sub>``, the rooms its token's subscribe claim lists), as far as known."""
        return list(self._subscribed)

    def subscribe(self, room: str) -> None:
        """Note a room the server subscribed this client to (an event came from a room it did
        not join): its position is presented at the next connect."""
        self._subscribed.setdefault(room, None)

    def connect_streams(self) -> dict[str, dict[str, Any] | None]:
        """The ``streams`` of the connect ``auth``: the position of each room the server
        subscribed this client to (None: none known yet). Call it once per connect: it starts
        the connect's tally, and a room the connect's answers leave out is no longer one."""
        self._answered = {}
        return {room: self.since(room) for room in self._subscribed}

    def recovery(self, answer: Any) -> Recovery | None:
        """Take a ``relay:recovery`` answer of the connect: for a room the server subscribed
        this client to (its ``room``), then last for the room-less stream (``room`` None).
        What came of the resume, as :meth:`answered` says; the room-less answer ends the
        connect's answers, so rooms left out of them are forgotten as subscribed."""
        room = answer.get("room") if isinstance(answer, dict) else None
        if isinstance(room, str):
            self.subscribe(room)
            if self._answered is not None:
                self._answered[room] = None
            return self.answered(room, answer)
        if self._answered is not None:
            # a token without the room any more (or another user's): not presented again
            self._subscribed = {r: None for r in self._subscribed if r in self._answered}
            self._answered = None
        return self.answered(None, answer)
