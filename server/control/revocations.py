"""Which users' older tokens are refused at connect, after a backend's disconnect command.

A disconnect (``relay:disconnect``) closes a user's connections; without more, the user's
helper, or anyone holding the token, could connect again at once. So for
``DISCONNECT_REVOKE_S`` seconds after the command, a connect of that user with a token issued
before it (its ``iat``, in whole seconds, earlier than the command's second; a token without
``iat`` counts as older) is refused. A token issued later connects: a user who logs in again
gets a new token, a banned one does not (the backend stops issuing them).

:class:`LocalRevocations` keeps them in memory (a server without Redis: each server of
several gets every command), at most :data:`MAX_USERS`, the oldest dropped first (counted).
:class:`~server.control.redis_revocations.RedisRevocations` (its own module: only cluster mode
imports redis) keeps ``<REDIS_PREFIX>:revoked:<user>`` with the window as its TTL,
read with one ``GET`` per connect; when Redis does not answer, the connect is let through
(logged): the connections were closed, and an outage must not lock every user out.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from shared import counters as c
from shared.counters import Counters

logger = logging.getLogger(__name__)

#: Users a server without Redis remembers as revoked; past it, the oldest is forgotten.
MAX_USERS = 100_000


def issued_before(issued_at: float | None, revoked_at: float) -> bool:
    """Whether a token issued at `issued_at` (None: unknown) predates a command at
    `revoked_at`. Whole seconds, as ``iat`` is: a token issued in the command's own second
    connects (a user who logs in again at once must not be refused)."""
    return issued_at is None or issued_at < math.floor(revoked_at)


class Revocations(Protocol):
    """Usage::

    await revocations.revoke(["alice"], at=time.time())   # ControlUnavailable: not recorded
    await revocations.revoked("alice", issued_at=1700000000)  # True: refuse the connect
    await revocations.close()
    """

    async def revoke(self, users: Iterable[str], at: float) -> None: ...

    async def revoked(self, user: str, issued_at: float | None) -> bool: ...

    async def close(self) -> None: ...


class LocalRevocations:
    """Revoked users in this process's memory, bounded."""

    def __init__(
        self,
        *,
        window_s: float,
        counters: Counters,
        max_users: int = MAX_USERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self._counters = counters
        self._max_users = max_users
        self._clock = clock
        self._at: OrderedDict[str, float] = OrderedDict()  # user -> command time, oldest first

    def __len__(self) -> int:
        return len(self._at)

    async def revoke(self, users: Iterable[str], at: float) -> None:
        if self.window_s <= 0:
            return
        for user in users:
            self._at[user] = max(at, self._at.pop(user, at))
        dropped = 0
        while len(self._at) > self._max_users:
            self._at.popitem(last=False)
            dropped += 1
        if dropped:
            self._counters.inc(c.REVOCATIONS_DROPPED, dropped)
            logger.warning(
                "Forgot %d revoked user(s) early: more than %d at once (their older tokens "
                "connect again)",
                dropped,
                self._max_users,
            )

    async def revoked(self, user: str, issued_at: float | None) -> bool:
        at = self._at.get(user)
        if at is None:
            return False
        if self._clock() >= at + self.window_s:
            del self._at[user]
            return False
        return issued_before(issued_at, at)

    async def close(self) -> None:
        pass
