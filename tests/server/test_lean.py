"""server/lean.py: the same answers as asyncio's Queue and Event, for less memory."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from server.lean import LeanEvent, LeanQueue

QUEUES: list[Callable[[], Any]] = [asyncio.Queue, LeanQueue]
EVENTS: list[Callable[[], Any]] = [asyncio.Event, LeanEvent]


def _held_per_object(make: Callable[[], Any], count: int = 2000) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(count)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return held / count


def test_an_idle_queue_and_event_hold_a_small_part_of_what_asyncios_do() -> None:
    for lean, stock in ((LeanQueue, asyncio.Queue), (LeanEvent, asyncio.Event)):
        assert _held_per_object(lean) * 4 < _held_per_object(stock), lean


@pytest.mark.parametrize("make", QUEUES)
async def test_a_queue_is_fifo_counts_and_says_when_empty(make: Callable[[], Any]) -> None:
    queue = make()
    assert (queue.empty(), queue.qsize(), queue.full(), queue.maxsize) == (True, 0, False, 0)
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    for n in range(3):
        await queue.put(n)
    queue.put_nowait(3)
    assert (queue.empty(), queue.qsize()) == (False, 4)
    assert [await queue.get(), queue.get_nowait(), await queue.get(), queue.get_nowait()] == [
        0, 1, 2, 3,
    ]  # fmt: skip
    assert queue.empty()
    queue.put_nowait("again")  # emptied and used again
    assert queue.get_nowait() == "again"


@pytest.mark.parametrize("make", QUEUES)
async def test_getters_wait_in_turn_and_a_cancelled_one_loses_nothing(
    make: Callable[[], Any],
) -> None:
    queue = make()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)  # gave up waiting: took nothing
    queue.put_nowait("a")
    first.cancel()  # woken for "a", cancelled before it ran: "a" goes to the next getter
    queue.put_nowait("b")
    assert await second == "a"
    assert first.cancelled()
    assert queue.get_nowait() == "b"
    assert queue.empty()


@pytest.mark.parametrize("make", QUEUES)
async def test_join_waits_for_every_task_done(make: Callable[[], Any]) -> None:
    queue = make()
    await asyncio.wait_for(queue.join(), 1)  # nothing unfinished: at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.create_task(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        queue.task_done()


@pytest.mark.parametrize("make", EVENTS)
async def test_an_event_wakes_every_waiter_and_clears(make: Callable[[], Any]) -> None:
    event = make()
    assert not event.is_set()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    gave_up = asyncio.create_task(asyncio.wait_for(event.wait(), 0.01))
    with pytest.raises(TimeoutError):
        await gave_up
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert event.is_set() and await event.wait() is True
    event.clear()
    assert not event.is_set()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    event.set()
    assert await late is True
