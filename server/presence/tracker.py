"""This server's side of presence: its connections counted into the store, and the joins and
leaves the store reports sent to rooms' members on every server.

The session handlers tell :class:`Presence` what each connection does (connected, entered or
left a room, gone); nothing waits for Redis there. The counts that changed are written in one
store call per flush (every :data:`FLUSH_S`), as this server's absolute counts, so that a burst
of reconnects costs one call, and a call that failed is simply made again. Joins and leaves of
one room are gathered for PRESENCE_COALESCE_S and published on the control bus as one notice;
every server sends it to that room's members on it as ``relay:presence``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from server.adapters.lookups import has_members
from server.control.bus import ControlUnavailable
from server.presence.model import ONLINE, Change, room_scope, scope_room
from server.presence.store import PresenceStore
from server.sessions.auth import Identity, pattern_matches
from shared import counters as c
from shared.counters import Counters
from shared.envelope import PRESENCE_EVENT, RESERVED_PREFIX
from shared.settings import Settings

logger = logging.getLogger(__name__)

#: How often the counts that changed are written, seconds.
FLUSH_S = 0.05
#: How often the store is asked for the leaves whose grace is over, seconds.
SWEEP_S = 0.25
#: The most joins (and leaves) one relay:presence notice lists; past it, ``more`` counts the
#: rest and members ask for the roster (a burst into a large room is one bounded notice).
NOTICE_MAX = 100

#: Publishes a notice on the control bus, to every server's :meth:`Presence.announce`.
Publish = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class _Notice:
    """Joins and leaves of one room, gathered until they are published."""

    joined: dict[str, str | None] = field(default_factory=dict)
    left: dict[str, None] = field(default_factory=dict)  # ordered set
    more: int = 0


class Presence:
    """Counts this server's connections by (scope, user) and reports joins and leaves.

    Usage::

        presence = Presence(settings, store=store, sio=sio, counters=counters)
        presence.start(publish)               # in the running loop
        presence.connected(namespace, sid, identity)
        presence.entered(namespace, sid, room); presence.exited(namespace, sid, room)
        presence.disconnected(namespace, sid)
        roster = await presence.roster(namespace, room, after=None)
        await presence.announce(notice)       # the control bus's handler, on every server
        await presence.close()
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: PresenceStore,
        sio: socketio.AsyncServer,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._patterns = tuple(settings.presence_rooms)
        self._online = settings.presence_events
        self.store = store
        self._sio = sio
        self._counters = counters
        self._mine: dict[tuple[str, str], int] = {}  # (scope, user) -> connections here
        self._info: dict[tuple[str, str], str | None] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._held: dict[tuple[str, str], tuple[str, str | None, set[str]]] = {}
        self._notices: dict[tuple[str, str], _Notice] = {}
        self._publish: Publish | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._flushing = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """Presence rooms are configured, or online/offline events are on."""
        return bool(self._patterns) or self._online

    def tracks(self, room: str | None) -> bool:
        """Whether `room` has presence (PRESENCE_ROOMS)."""
        return (
            room is not None
            and not room.startswith(RESERVED_PREFIX)
            and any(pattern_matches(pattern, room) for pattern in self._patterns)
        )

    # --- what connections do -------------------------------------------------------------------
    def connected(self, namespace: str, sid: str, identity: Identity) -> None:
        user = identity.user
        if user is None or not self.enabled:
            return
        scopes: set[str] = set()
        self._held[(namespace, sid)] = (user, identity.info, scopes)
        if self._online:
            scopes.add(ONLINE)
            self._add(ONLINE, user, 1, identity.info)

    def entered(self, namespace: str, sid: str, room: str | None) -> None:
        held = self._held.get((namespace, sid))
        if held is None or not self.tracks(room):
            return
        assert room is not None
        user, info, scopes = held
        scope = room_scope(namespace, room)
        if scope not in scopes:
            scopes.add(scope)
            self._add(scope, user, 1, info)

    def exited(self, namespace: str, sid: str, room: str | None) -> None:
        held = self._held.get((namespace, sid))
        if held is None or room is None:
            return
        user, _info, scopes = held
        scope = room_scope(namespace, room)
        if scope in scopes:
            scopes.discard(scope)
            self._add(scope, user, -1, None)

    def disconnected(self, namespace: str, sid: str) -> None:
        held = self._held.pop((namespace, sid), None)
        if held is None:
            return
        user, _info, scopes = held
        for scope in scopes:
            self._add(scope, user, -1, None)

    def _add(self, scope: str, user: str, delta: int, info: str | None) -> None:
        key = (scope, user)
        self._mine[key] = self._mine.get(key, 0) + delta
        if info is not None:
            self._info[key] = info
        self._dirty.add(key)

    # --- asking --------------------------------------------------------------------------------
    async def roster(self, namespace: str, room: str, *, after: str | None) -> dict[str, Any]:
        """The answer to a presence request: the room's count, and a page of its members
        (none past PRESENCE_MAX_MEMBERS); raises what the store raises."""
        settings = self._settings
        if self._task is not None:
            await self._flush()  # this server's own changes are in it: read your writes
        roster = await self.store.roster(
            room_scope(namespace, room),
            after=after,
            limit=settings.presence_page_size,
            max_members=settings.presence_max_members,
        )
        answer: dict[str, Any] = {"ok": True, "room": room, "count": roster.count}
        if roster.members is not None:
            answer["members"] = [
                {
                    "user": member.user,
                    "connections": member.connections,
                    "info": json.loads(member.info) if member.info else None,
                }
                for member in roster.members
            ]
            answer["next"] = roster.next
        return answer

    # --- running -------------------------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        """Begin writing counts and reporting changes, notices going out through `publish`."""
        self._publish = publish
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="presence")

    async def close(self) -> None:
        """Write this server's last counts (every connection gone: each member's grace
        starts), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for key in self._mine:
            self._mine[key] = 0
            self._dirty.add(key)
        try:
            await self._flush()
            await self._announce_all()
        except self.store.errors as exc:
            logger.warning("Presence: could not write the last counts: %s", exc)
        await self.store.close()

    async def _run(self) -> None:
        await self._retrying(self.store.start)
        lease_every = self._settings.presence_lease_s / 3
        renewed = swept = announced = 0.0
        registered = False
        while True:
            await asyncio.sleep(FLUSH_S)
            now = time.monotonic()
            try:
                if now - renewed >= lease_every:
                    if not await self.store.renew() and registered:
                        logger.warning(
                            "Presence: this server's lease had lapsed (Redis was out of reach "
                            "for PRESENCE_LEASE_S); writing all its counts again"
                        )
                        self._dirty.update(self._mine)
                    registered = True
                    if held := await self.store.reap():
                        logger.info(
                            "Presence: took out %d member count(s) of a server whose lease "
                            "lapsed; they leave after the grace unless they reconnect",
                            held,
                        )
                    renewed = now
                await self._flush()
                if now - swept >= SWEEP_S:
                    self._changed(await self.store.sweep())
                    swept = now
                if now - announced >= self._settings.presence_coalesce_s:
                    await self._announce_all()
                    announced = now
                if self._failing:
                    logger.info("Presence: the store answers again")
                    self._failing = False
            except self.store.errors as exc:
                if not self._failing:
                    logger.warning("Presence: the store failed (%s); retrying", exc)
                    self._failing = True
                self._counters.inc(c.PRESENCE_ERRORS)
                await asyncio.sleep(min(1.0, self._settings.presence_lease_s / 6))

    async def _retrying(self, call: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await call()
                return
            except self.store.errors as exc:
                logger.warning("Presence: the store failed at start (%s); retrying", exc)
                self._counters.inc(c.PRESENCE_ERRORS)
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        # One at a time: counts are absolute, so an older write must not land after a newer.
        async with self._flushing:
            await self._flush_now()

    async def _flush_now(self) -> None:
        if not self._dirty:
            return
        # A user's online before its rooms' joins, its offline after their leaves: each is
        # numbered in this order in the user's sequence.
        keys = sorted(self._dirty, key=self._order)
        self._dirty.clear()
        counts = [
            (scope, user, self._mine.get((scope, user), 0), self._info.get((scope, user)))
            for scope, user in keys
        ]
        try:
            changes = await self.store.apply(counts)
        except BaseException:
            self._dirty.update(keys)  # written again with the next flush
            raise
        for key in keys:
            if self._mine.get(key) == 0:  # still gone after the await
                del self._mine[key]
                self._info.pop(key, None)
        self._changed(changes)

    def _order(self, key: tuple[str, str]) -> int:
        if key[0] != ONLINE:
            return 1
        return 0 if self._mine.get(key, 0) > 0 else 2

    def _changed(self, changes: list[Change]) -> None:
        for change in changes:
            self._counters.inc(c.PRESENCE_CHANGES, reason=change.kind)
            room = scope_room(change.scope)
            if room is None:
                continue
            notice = self._notices.setdefault(room, _Notice())
            user = change.user
            if change.kind == "join":
                if user in notice.left:  # left and back within one notice: no news
                    del notice.left[user]
                elif len(notice.joined) < NOTICE_MAX:
                    notice.joined[user] = change.info
                else:
                    notice.more += 1
            elif user in notice.joined:
                del notice.joined[user]
            elif len(notice.left) < NOTICE_MAX:
                notice.left[user] = None
            else:
                notice.more += 1

    async def _announce_all(self) -> None:
        notices, self._notices = self._notices, {}
        assert self._publish is not None
        for (namespace, room), notice in notices.items():
            if not (notice.joined or notice.left or notice.more):
                continue
            body = {
                "namespace": namespace,
                "room": room,
                "joined": [{"user": u, "info": i} for u, i in notice.joined.items()],
                "left": list(notice.left),
                "more": notice.more,
            }
            try:
                await self._publish(body)
            except ControlUnavailable as exc:  # the roster stays right; members may ask it
                logger.warning("Presence: could not publish a notice for %s: %s", room, exc)

    async def announce(self, body: dict[str, Any]) -> None:
        """The control bus's handler: a room's joins and leaves, to its members here."""
        namespace, room = body.get("namespace"), body.get("room")
        if not isinstance(namespace, str) or not isinstance(room, str):
            return
        if not has_members(self._sio, namespace, room):
            return
        payload: dict[str, Any] = {
            "room": room,
            "joined": [
                {"user": j["user"], "info": json.loads(j["info"]) if j.get("info") else None}
                for j in body.get("joined", [])
            ],
            "left": body.get("left", []),
        }
        if body.get("more"):
            payload["more"] = body["more"]
        await self._sio.emit(PRESENCE_EVENT, payload, to=room, namespace=namespace)
