"""The server keeps the garbage collector's passes off its long-lived objects (start-up's
frozen, a larger young threshold, full passes as clients go), and cycles are still
collected."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from server.collector import FULL_AFTER_MIDDLE, FullPasses, tune_garbage_collector


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("collector")
def test_start_up_objects_are_frozen_and_the_young_threshold_set() -> None:
    middle = gc.get_threshold()[1]
    frozen = tune_garbage_collector(5_000)
    assert frozen == gc.get_freeze_count() > 1_000  # this test run's modules at least
    # Python's middle threshold, and its own default for the full one
    assert gc.get_threshold() == (5_000, middle, FULL_AFTER_MIDDLE) == (5_000, middle, 10)


@pytest.mark.usefixtures("collector")
def test_cycles_made_after_start_up_are_still_collected() -> None:
    tune_garbage_collector(5_000)

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(0)
    gc.collect(1)  # both now in the old generation, as a long-lived client's objects are
    del a, b
    assert gc.collect() >= 2  # a full pass finds the cycle


def _full_passes() -> tuple[list[int], Any]:
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(info["collected"])

    return seen, callback


async def test_a_full_pass_follows_a_quarter_of_the_connected_clients_leaving() -> None:
    passes = FullPasses(min_departures=10)
    seen, callback = _full_passes()
    gc.callbacks.append(callback)
    try:
        for _ in range(39):  # a quarter of the 160 still connected is 40
            passes.client_gone(160)
        await asyncio.sleep(0)
        assert (passes.passes, seen) == (0, [])
        passes.client_gone(160)
        await asyncio.sleep(0)
        assert passes.passes == len(seen) == 1 and passes.departures == 0
        for _ in range(9):  # few left: at least min_departures
            passes.client_gone(1)
        await asyncio.sleep(0)
        assert passes.passes == 1
        passes.client_gone(1)
        await asyncio.sleep(0)
        assert passes.passes == len(seen) == 2
    finally:
        gc.callbacks.remove(callback)


async def test_a_departed_clients_cycles_are_freed_by_its_pass() -> None:
    class Client:
        me: object

    passes = FullPasses(min_departures=1)
    client = Client()
    client.me = client
    gc.collect()  # now old, as a long-lived client's objects are
    gone = [client]
    del client
    collected, callback = _full_passes()
    gc.callbacks.append(callback)
    try:
        gone.clear()
        passes.client_gone(0)
        await asyncio.sleep(0)
    finally:
        gc.callbacks.remove(callback)
    assert collected and collected[0] >= 1
