"""The one interface of presence's count keeper, which :class:`~server.presence.tracker.Presence`
uses in both modes: :class:`~server.presence.local.LocalPresence` (one server, no Redis) and
:class:`~server.presence.redis_store.RedisPresence` (cluster mode)."""

from __future__ import annotations

from typing import Protocol

from server.presence.model import Change, Outgoing, Roster

#: One member's connections on this server: (scope, user, count, info or None).
Count = tuple[str, str, int, str | None]


class PresenceStore(Protocol):
    """Keeps every member's connections over every server, and the backend's outbox.

    Usage::

        await store.start()
        changes = await store.apply(counts)   # this server's absolute counts that changed
        changes += await store.sweep()        # leaves whose grace is over
        if not await store.renew(): ...       # cluster: the lease lapsed, apply all again
        await store.reap()                    # cluster: take out servers whose lease lapsed
        roster = await store.roster(scope, after=None, limit=100, max_members=1000)
        if await store.lead(): batch = await store.outbox(10); ...; await store.sent(ids)
        await store.close()

    Every method may raise what its backend raises, listed in :attr:`errors`; the caller
    retries.
    """

    #: What its calls may raise when the backend fails (the caller retries them).
    errors: tuple[type[Exception], ...]

    async def start(self) -> None: ...

    async def apply(self, counts: list[Count]) -> list[Change]:
        """This server's connections per (scope, user), absolute; the joins they make (and, for
        a count back from 0 within a grace, nothing). Idempotent."""
        ...

    async def sweep(self) -> list[Change]:
        """The leaves of members at 0 connections whose grace is over."""
        ...

    async def renew(self) -> bool:
        """Renew this server's lease; False if it had lapsed (write every count again)."""
        ...

    async def reap(self) -> int:
        """Take out every other server whose lease lapsed; how many (scope, user) they held."""
        ...

    async def roster(
        self, scope: str, *, after: str | None, limit: int, max_members: int
    ) -> Roster: ...

    async def lead(self) -> bool:
        """Whether this server is the one that sends the outbox now (one at a time, so that
        each user's events reach SQS in order)."""
        ...

    async def outbox(self, limit: int) -> list[Outgoing]:
        """The oldest events waiting for SQS."""
        ...

    async def sent(self, ids: list[str]) -> None:
        """These events reached SQS: out of the outbox."""
        ...

    async def dropped(self) -> int:
        """Events the full outbox could not keep, in all."""
        ...

    async def close(self) -> None: ...
