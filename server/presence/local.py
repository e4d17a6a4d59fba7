"""Presence on one server without Redis: counts in memory, and, with online/offline events on,
who is present, each user's sequence and the outbox in SQLite (PRESENCE_STATE_FILE, else in
memory), so that a server killed and restarted still sends the leaves its crash left owed.

SQLite (the standard library's) rather than a file format of our own: each change is one
transaction, and a kill between two leaves the file as the last commit left it. Its calls are
short and made from the event loop, once per flush of many changes (server/presence/tracker.py).
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import time
from pathlib import Path

from server.presence.model import EVENT_TYPES, Change, Kind, Member, Outgoing, Roster, scope_room
from server.presence.store import Count

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS present (scope TEXT, user TEXT, PRIMARY KEY (scope, user));
CREATE TABLE IF NOT EXISTS seq (user TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
                                   seq INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class LocalPresence:
    """:class:`~server.presence.store.PresenceStore` for one server (see module doc)."""

    errors: tuple[type[Exception], ...] = (OSError, sqlite3.Error)

    def __init__(
        self, *, grace_s: float, events: bool, outbox_max: int, state_file: Path | None
    ) -> None:
        self._grace_ms = int(grace_s * 1000)
        self._events = events
        self._outbox_max = outbox_max
        self._path = state_file
        self._counts: dict[str, dict[str, int]] = {}  # scope -> user -> connections
        self._info: dict[tuple[str, str], str] = {}
        # (deadline ms, scope, user), and each member's latest deadline: an entry whose member
        # came back (or left again since) is skipped when due
        self._pending: list[tuple[int, str, str]] = []
        self._due: dict[tuple[str, str], int] = {}
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        if not self._events:
            return
        path = str(self._path) if self._path is not None else ":memory:"
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # Whoever was present when the last run ended (or was killed) has no connection now:
        # each leaves after the grace, unless it comes back first.
        owed = self._db.execute("SELECT scope, user FROM present").fetchall()
        deadline = now_ms() + self._grace_ms
        for scope, user in owed:
            self._counts.setdefault(scope, {})[user] = 0
            self._wait(scope, user, deadline)
        if owed:
            logger.info(
                "%d member(s) present when the last run ended leave within %.1f s unless "
                "they reconnect",
                len(owed),
                self._grace_ms / 1000,
            )

    async def apply(self, counts: list[Count]) -> list[Change]:
        changes: list[Change] = []
        now = now_ms()
        for scope, user, count, info in counts:
            members = self._counts.setdefault(scope, {})
            before = members.get(user)
            if info is not None and count > 0:
                self._info[(scope, user)] = info
            if before is None:
                if count > 0:
                    members[user] = count
                    changes.append(Change("join", scope, user, self._info.get((scope, user))))
                continue
            members[user] = count
            if before > 0 and count == 0:
                self._wait(scope, user, now + self._grace_ms)
        self._record(changes, now)
        return changes

    async def sweep(self) -> list[Change]:
        changes: list[Change] = []
        now = now_ms()
        while self._pending and self._pending[0][0] <= now:
            deadline, scope, user = heapq.heappop(self._pending)
            if self._due.get((scope, user)) != deadline:
                continue
            del self._due[(scope, user)]
            members = self._counts.get(scope, {})
            if members.get(user) == 0:
                del members[user]
                if not members:
                    del self._counts[scope]
                self._info.pop((scope, user), None)
                changes.append(Change("leave", scope, user))
        self._record(changes, now)
        return changes

    def _wait(self, scope: str, user: str, deadline: int) -> None:
        heapq.heappush(self._pending, (deadline, scope, user))
        self._due[(scope, user)] = deadline

    def _record(self, changes: list[Change], now: int) -> None:
        """Keep who is present, and put each change in the outbox (online/offline events on)."""
        db = self._db
        if db is None or not changes:
            return
        db.execute("BEGIN")
        for change in changes:
            if change.kind == "join":
                db.execute(
                    "INSERT OR IGNORE INTO present VALUES (?, ?)", (change.scope, change.user)
                )
            else:
                db.execute(
                    "DELETE FROM present WHERE scope = ? AND user = ?", (change.scope, change.user)
                )
            seq = db.execute(
                "INSERT INTO seq VALUES (?, 1) ON CONFLICT (user) DO UPDATE SET n = n + 1 "
                "RETURNING n",
                (change.user,),
            ).fetchone()[0]
            (waiting,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            if waiting >= self._outbox_max:
                db.execute(
                    "INSERT INTO counter VALUES ('dropped', 1) "
                    "ON CONFLICT (name) DO UPDATE SET n = n + 1"
                )
                continue
            body = event_body(change.kind, change.scope, change.user, seq, now)
            db.execute(
                "INSERT INTO outbox (user, seq, body) VALUES (?, ?, ?)", (change.user, seq, body)
            )
        db.execute("COMMIT")

    async def renew(self) -> bool:
        return True

    async def reap(self) -> int:
        return 0

    async def roster(
        self, scope: str, *, after: str | None, limit: int, max_members: int
    ) -> Roster:
        members = self._counts.get(scope, {})
        if len(members) > max_members:
            return Roster(len(members), None)
        users = sorted(user for user in members if after is None or user > after)
        page = users[:limit]
        listed = [Member(user, members[user], self._info.get((scope, user))) for user in page]
        return Roster(len(members), listed, page[-1] if len(users) > limit else None)

    async def lead(self) -> bool:
        return self._db is not None

    async def outbox(self, limit: int) -> list[Outgoing]:
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT id, user, seq, body FROM outbox ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [Outgoing(str(id_), user, seq, body) for id_, user, seq, body in rows]

    async def sent(self, ids: list[str]) -> None:
        if self._db is not None and ids:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(int(i),) for i in ids])

    async def dropped(self) -> int:
        if self._db is None:
            return 0
        row = self._db.execute("SELECT n FROM counter WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def event_body(kind: Kind, scope: str, user: str, seq: int, at: int) -> str:
    """A backend event's JSON (as the Redis scripts write it: server/presence/lua/common.lua)."""
    room = scope_room(scope)
    body: dict[str, object] = {
        "type": EVENT_TYPES[(room is None, kind)],
        "user": user,
        "seq": seq,
        "at": at,
    }
    if room is not None:
        body |= {"namespace": room[0], "room": room[1]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
