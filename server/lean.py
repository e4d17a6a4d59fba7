"""asyncio's `Queue` and `Event` for what every client holds: the same behaviour, without
what they allocate before anything waits.

Each connected client holds two queues (uvicorn's ASGI receive queue and engine.io's
outgoing one, server/outgoing/queue.py) and an event (uvicorn's flow control). CPython's
`asyncio.Queue` makes three deques and an `Event` (with a deque of its own) when it is
created, and a deque is a 64-slot block: about 3 KB per queue and 0.7 KB per event, about
7 KB per client before a single packet, a fifth of what a client costs the server. These
make their deque, or their list of waiters, when something is queued or something waits, and
let it go when the queue is empty again. The standard library has nothing smaller, hence
these few lines (and their tests, tests/server/test_lean.py, run against asyncio's for the
same answers).

:class:`LeanQueue` is unbounded (`maxsize` 0, as both its users make theirs): `put` never
waits. `get_nowait` raises `asyncio.QueueEmpty`, as engine.io expects.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiters: list[asyncio.Future[None]] | None, every: bool) -> None:
    """Wake the first waiter that is still waiting (`every`: all of them)."""
    while waiters:
        fut = waiters.pop(0)
        if not fut.done():
            fut.set_result(None)
            if not every:
                return


class LeanQueue(Generic[T]):
    """An unbounded FIFO with `asyncio.Queue`'s interface (put, put_nowait, get, get_nowait,
    qsize, empty, full, task_done, join) that holds no deque while empty."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")
    maxsize = 0

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        self._unfinished += 1
        _wake(self._getters, every=False)

    async def put(self, item: T) -> None:
        self.put_nowait(item)  # unbounded: never waits

    def get_nowait(self) -> T:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while not self._items:
            fut = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(fut)
            try:
                await fut
            except BaseException:
                fut.cancel()
                if fut in self._getters:
                    self._getters.remove(fut)
                elif self._items:  # woken for an item it will not take: the next one takes it
                    _wake(self._getters, every=False)
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0:
            joiners, self._joiners = self._joiners, None
            _wake(joiners, every=True)

    async def join(self) -> None:
        if self._unfinished:
            fut = asyncio.get_running_loop().create_future()
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(fut)
            await fut


class LeanEvent:
    """`asyncio.Event` (set, clear, is_set, wait) that holds no deque while nothing waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiters, self._waiters = self._waiters, None
            _wake(waiters, every=True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        waiters = self._waiters
        waiters.append(fut)
        try:
            await fut
        finally:
            if fut in waiters:
                waiters.remove(fut)
        return True
