"""What presence counts, and what it reports.

A *scope* is what a user is present in: a presence room (its stream's key, as Redis keys
name streams: server/history/redis_keys.py) or :data:`ONLINE`, the user's being connected at
all. Each (scope, user) has a count of connections over every server; a count going from
none to one is a join, and a count at zero for PRESENCE_GRACE_S is a leave (a quick
reconnect within it is neither).

The backend's events (PRESENCE_EVENTS_QUEUE_URL) are JSON objects::

    {"type": "user_online", "user": "alice", "seq": 7, "at": 1733234567890}
    {"type": "room_join", "user": "alice", "seq": 8, "at": ..., "namespace": "/", "room": "chat"}

``seq`` counts each user's events from 1, over every type; a number missing from a user's
sequence is an event the relay could not keep (its outbox was full). ``at`` is when the
change happened (ms since the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.history.redis_keys import parse_stream_key, stream_key

#: The scope of a user's being online at all (any namespace): never a stream's key, which
#: starts with a digit.
ONLINE = "~"

Kind = Literal["join", "leave"]

#: The backend's event type for each (scope is ONLINE, kind).
EVENT_TYPES = {
    (True, "join"): "user_online",
    (True, "leave"): "user_offline",
    (False, "join"): "room_join",
    (False, "leave"): "room_leave",
}


def room_scope(namespace: str, room: str) -> str:
    """The scope of a presence room."""
    return stream_key((namespace, room))


def scope_room(scope: str) -> tuple[str, str] | None:
    """(namespace, room) of a room's scope; None for :data:`ONLINE`."""
    if scope == ONLINE:
        return None
    namespace, room = parse_stream_key(scope)
    return namespace, room or ""


@dataclass(frozen=True, slots=True)
class Change:
    """A join or a leave of `user` in `scope`; `info` is the member's public info (joins)."""

    kind: Kind
    scope: str
    user: str
    info: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a room: its user id, its connections over every server (0 while it is
    within the grace of a reconnect), and its public info (JSON text) if its token had one."""

    user: str
    connections: int
    info: str | None


@dataclass(frozen=True, slots=True)
class Roster:
    """A presence request's answer: the room's member count, and a page of members (None when
    the room is too large to list), sorted by user id; ``next`` is the user id to ask the next
    page after (None: this was the last)."""

    count: int
    members: list[Member] | None
    next: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One backend event waiting for SQS: its outbox id, user, sequence number and body."""

    id: str
    user: str
    seq: int
    body: str
