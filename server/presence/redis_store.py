"""Presence in cluster mode: every server's connections in Redis, with leases.

Each server writes its own connections per (scope, user) as absolute counts (its ``srv:``
hash), and the script adds the difference to the members' counts over every server (``m:``
hashes): a join, or the start or end of a leave's grace, is decided in the same atomic step,
so that two servers never both announce one. A server renews its lease every third of
PRESENCE_LEASE_S; one whose lease lapsed (killed, cut off) is taken out by whichever server
looks first, and its members leave after the grace from there. A member's join costs O(1)
commands whatever the room's size; a listing, O(members) up to PRESENCE_MAX_MEMBERS.

Keys and what each holds: lua/common.lua.
"""

from __future__ import annotations

import secrets
from importlib import resources
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.presence.model import Change, Member, Outgoing, Roster
from server.presence.store import Count

#: A user's sequence number is kept this long after their last event (then starts again at 1).
SEQ_TTL_S = 30 * 86_400
#: Leaves taken per sweep call.
_SWEEP_MAX = 500


def _script(name: str) -> str:
    lua = resources.files("server.presence") / "lua"
    return (lua / "common.lua").read_text() + (lua / f"{name}.lua").read_text()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _changes(reply: list[bytes]) -> list[Change]:
    out = []
    for i in range(0, len(reply), 4):
        kind, scope, user, info = (value.decode() for value in reply[i : i + 4])
        out.append(Change("join" if kind == "join" else "leave", scope, user, info or None))
    return out


class RedisPresence:
    """:class:`~server.presence.store.PresenceStore` over Redis (see module doc)."""

    errors: tuple[type[Exception], ...] = (RedisError, OSError)

    def __init__(
        self,
        *,
        redis_url: str,
        prefix: str,
        grace_s: float,
        lease_s: float,
        events: bool,
        outbox_max: int,
    ) -> None:
        self.server_id = secrets.token_hex(8)
        self._p = f"{prefix}:presence:"
        self._grace_ms = int(grace_s * 1000)
        self._lease_ms = int(lease_s * 1000)
        self._events = "1" if events else "0"
        self._outbox_max = outbox_max
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=max(2.0, lease_s / 3), socket_connect_timeout=2
        )
        self._apply = self._redis.register_script(_script("apply"))
        self._sweep = self._redis.register_script(_script("sweep"))
        self._reap = self._redis.register_script(_script("reap"))
        self._renew = self._redis.register_script(_script("renew"))
        self._lead = self._redis.register_script(_script("lead"))
        self._leader = f"{self._p}sender"

    async def start(self) -> None:
        await self.renew()

    async def apply(self, counts: list[Count]) -> list[Change]:
        args: list[str | int] = [
            self._p,
            self.server_id,
            self._grace_ms,
            self._events,
            self._outbox_max,
            SEQ_TTL_S,
        ]
        for scope, user, count, info in counts:
            args += [scope, user, count, info or ""]
        return _changes(await self._apply(args=args))

    async def sweep(self) -> list[Change]:
        args: list[str | int] = [self._p, self._events, self._outbox_max, SEQ_TTL_S, _SWEEP_MAX]
        return _changes(await self._sweep(args=args))

    async def renew(self) -> bool:
        return bool(await self._renew(args=[self._p, self.server_id, self._lease_ms]))

    async def reap(self) -> int:
        held = 0
        for member in await self._redis.smembers(f"{self._p}servers"):
            server = _text(member)
            if server != self.server_id:
                held += int(await self._reap(args=[self._p, server, self._grace_ms]))
        return held

    async def roster(
        self, scope: str, *, after: str | None, limit: int, max_members: int
    ) -> Roster:
        key = f"{self._p}m:{scope}"
        count = int(await self._redis.hlen(key))
        if count > max_members:
            return Roster(count, None)
        counts = {_text(user): int(n) for user, n in (await self._redis.hgetall(key)).items()}
        users = sorted(user for user in counts if after is None or user > after)
        page = users[:limit]
        infos = await self._redis.hmget(f"{self._p}info:{scope}", page) if page else []
        members = [
            Member(user, counts[user], _text(info) if info else None)
            for user, info in zip(page, infos, strict=True)
        ]
        return Roster(count, members, page[-1] if len(users) > limit else None)

    async def lead(self) -> bool:
        return bool(await self._lead(args=[self._p, self.server_id, self._lease_ms]))

    async def outbox(self, limit: int) -> list[Outgoing]:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(f"{self._p}outbox", count=limit),
        )
        return [
            Outgoing(_text(id_), _text(fields[b"u"]), int(fields[b"s"]), _text(fields[b"b"]))
            for id_, fields in entries
        ]

    async def sent(self, ids: list[str]) -> None:
        if ids:
            await self._redis.xdel(f"{self._p}outbox", *ids)

    async def dropped(self) -> int:
        return int(await self._redis.get(f"{self._p}outbox:dropped") or 0)

    async def close(self) -> None:
        """Give up the lease and the sender's lease: the counts this server wrote stay until
        another server takes them out (the tracker writes zeros first on a clean stop)."""
        try:
            await self._redis.delete(f"{self._p}lease:{self.server_id}")
            if await self._redis.get(self._leader) == self.server_id.encode():
                await self._redis.delete(self._leader)
        finally:
            await self._redis.aclose()
