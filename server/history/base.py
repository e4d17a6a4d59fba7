"""The one interface of the replay history, which the relay's parts use in both modes.

:class:`History` is implemented twice, and :class:`~server.relay.Relay` picks one at start:
:class:`~server.history.local.LocalHistory` (one server: this process numbers, keeps and emits
every event) and :class:`~server.history.redis_history.RedisHistory` (cluster mode, REDIS_URL:
the history is shared in Redis and every server emits what the shared feed brings). The
hand-off's handler appends batches to it, the session handlers resume clients from it, and
/healthz and /readyz ask it how it is; none of them knows which one it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from server.history.replay import Entry, Stream
from shared.wire import Delivery

#: Emits one event to its stream's room: (stream, event, payload, sent_ms, emitted_ms); raises
#: what the emit raised. The history emits only through this, given at :meth:`History.start`.
Publish = Callable[[Stream, str, Any, int | None, int], Awaitable[None]]

#: Told what became of each delivery of a batch: (delivery, outcome, started_ns, ended_ns), the
#: outcome one of :data:`OUTCOMES`; the times (`time.time_ns()`) bound its own work where the
#: history does one delivery at a time, else the batch's. Only while traces are on.
Observe = Callable[[Delivery, str, int, int], None]
#: What :data:`Observe` is told: emitted (to at least one room), duplicate (every room had it),
#: stale (a state room holds a newer version), failed (the emit raised: not confirmed), held
#: (FIFO: behind a failed one of its group), appended (cluster mode: in the shared history,
#: every server emits it from the feed), unavailable (cluster mode: Redis did not answer).
#: Not confirmed: failed, held, unavailable.
OUTCOMES = ("emitted", "duplicate", "stale", "failed", "held", "appended", "unavailable")

#: Called when this server finds it missed events its clients should have had (cluster mode:
#: the shared feed was trimmed past it): every client should reconnect and resume.
OnGap = Callable[[], None]


class HistoryUnavailable(Exception):
    """The shared history (cluster mode: Redis) could not be asked; the reason says what
    happened."""


class Seen(Protocol):
    """The de-duplication window, as a history uses it: keys (MessageId, room) emitted in the
    last ``window_s`` seconds (server/intake/dedup.py's RecentIds, owned by the hand-off's
    handler)."""

    window_s: float

    def __contains__(self, key: object) -> bool: ...

    def add(self, key: Hashable) -> None: ...


@dataclass(slots=True)
class CatchUp:
    """The first part of a resume: what the history gives before :meth:`History.after` goes on.

    ``offset`` is where :meth:`History.after` continues from (None: it cannot, or there was
    nothing to resume; the client only gets live events); ``entries`` (event, payload) to send
    first, ``size`` their bytes; ``failure`` why the resume is not a full recovery, if it is not;
    ``refused`` when that is because the resume's byte budget was too small; ``retry`` when the
    history cannot serve it now (cluster mode: Redis is down, or this server's feed reader is
    behind) but nothing is known to be lost: the client is to resume again from its own
    position, not resync.
    """

    epoch: str
    offset: int | None
    entries: list[tuple[str, orjson.Fragment]] = field(default_factory=list)
    size: int = 0
    failure: str | None = None
    refused: bool = False
    retry: bool = False


class History(Protocol):
    """Appends batches, emits every event once per server with its stream's offset, and brings
    a resuming client up to date.

    Usage::

        history.start(publish, on_gap)               # in the running loop; emits via publish
        confirmed = await history.append(deliveries, seen)  # MessageIds safe to delete
        catch = await history.catch_up(stream, since, budget)  # a resume starts here,
        entries = history.after(stream, offset)      # goes on here (RecoveryFailed: it cannot)
        answer = {"epoch": history.epoch, "offset": history.position(stream, offset)}
        await history.close()
    """

    #: Counter names this history adds to the stop's summary line.
    summary_counters: tuple[str, ...]

    @property
    def epoch(self) -> str:
        """The epoch every offset belongs to (docs/protocol.md, "Replay on reconnect")."""
        ...

    @property
    def problem(self) -> str | None:
        """Why batches cannot be confirmed now (/readyz says it), or None while they can."""
        ...

    @property
    def redis_healthy(self) -> bool | None:
        """Whether Redis answered the last call; None without Redis (/healthz ``redis``)."""
        ...

    def start(self, publish: Publish, on_gap: OnGap) -> None:
        """Begin: from now on every event goes out through ``publish``. In the running loop."""
        ...

    async def close(self) -> None: ...

    async def append(
        self, deliveries: list[Delivery], seen: Seen, observe: Observe | None = None
    ) -> list[str]:
        """Take a batch; return the MessageIds safe to delete from SQS. ``seen`` is the
        de-duplication window (what was emitted to which room, and for how long); ``observe``,
        when given, is told each delivery's outcome."""
        ...

    async def catch_up(self, stream: Stream, since: Any, budget: int) -> CatchUp:
        """Begin a resume of ``stream`` from the client's ``since`` (None: nothing to resume,
        just the position), sending at most ``budget`` bytes."""
        ...

    async def latest(self, stream: Stream, budget: int) -> CatchUp:
        """A state room's latest event per key (at most ``budget`` bytes, the newest kept),
        oldest first, and the offset from which :meth:`after` goes on (the stream's position
        as they were read)."""
        ...

    async def recent(
        self, stream: Stream, count: int, budget: int, *, until: int | None = None
    ) -> CatchUp:
        """The stream's last ``count`` events still held (within ``budget`` bytes, the newest
        kept; none above offset ``until``), oldest first, and its position: what a backend
        reads while it renders a page (the read API), so that a client given the position
        resumes with no gap."""
        ...

    def after(self, stream: Stream, offset: int) -> list[Entry]:
        """This server's kept entries above ``offset``, oldest first, taken with no await
        since the last emit: RecoveryFailed if some are no longer kept."""
        ...

    def position(self, stream: Stream, reached: int | None) -> int:
        """The stream's position for a client entering it now, after a resume that got to
        offset ``reached`` (None: none, or it failed)."""
        ...
