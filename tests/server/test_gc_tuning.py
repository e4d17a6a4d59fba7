"""The server keeps the garbage collector's passes off its long-lived objects (the start-up's
and every pass's survivors set aside, a larger young threshold, full passes as clients go or
as unexplained growth calls for them), and cycles are still collected."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from server.collector import FULL_AFTER_MIDDLE, Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    before = gc.get_threshold()
    collector = Collector(min_departures=10)
    yield collector
    collector.release()
    gc.set_threshold(*before)


class Node:
    other: object


def _full_passes() -> tuple[list[int], Any]:
    seen: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(info["collected"])

    return seen, callback


def test_start_up_objects_are_set_aside_and_the_young_threshold_set(
    collector: Collector,
) -> None:
    middle = gc.get_threshold()[1]
    aside = collector.take_over(5_000)
    assert aside == collector.start_up_objects == gc.get_freeze_count() > 1_000
    # Python's middle threshold, and its own default for the full one
    assert gc.get_threshold() == (5_000, middle, FULL_AFTER_MIDDLE) == (5_000, middle, 10)
    held = [[n] for n in range(1_000)]
    assert collector.made_since_start_up() >= len(held)


def test_what_survives_a_young_pass_is_set_aside_and_still_freed_by_reference_counting(
    collector: Collector,
) -> None:
    collector.take_over(5_000)
    survivor = Node()
    freed = weakref.ref(survivor)
    before = gc.get_freeze_count()
    gc.collect(0)
    assert gc.get_freeze_count() > before  # the survivor is set aside, not in gen 1
    assert all(o is not survivor for o in gc.get_objects())
    del survivor  # no cycle: freed at once, set aside or not
    assert freed() is None


async def test_a_departed_clients_cycles_set_aside_are_freed_by_the_full_pass_that_follows(
    collector: Collector,
) -> None:
    collector.take_over(5_000)
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect(0)  # both survive a pass and are set aside, as a long-lived client's objects
    del a, b
    assert gc.collect() == 0  # a pass (Python's full one) does not see what is set aside
    seen, callback = _full_passes()
    gc.callbacks.append(callback)
    try:
        for _ in range(9):
            collector.client_gone(0)
        await asyncio.sleep(0)
        assert (collector.passes, seen) == (0, [])
        collector.client_gone(0)  # the 10th departure: min_departures
        await asyncio.sleep(0)
    finally:
        gc.callbacks.remove(callback)
    assert collector.passes == 1 and collector.departures == 0
    assert seen and seen[0] >= 2  # the full pass found the cycle
    assert gc.get_freeze_count() > 0  # and set the survivors aside again


async def test_a_full_pass_follows_a_quarter_of_the_connected_clients_leaving(
    collector: Collector,
) -> None:
    collector.take_over(5_000)
    for _ in range(39):  # a quarter of the 160 still connected is 40
        collector.client_gone(160)
    await asyncio.sleep(0)
    assert collector.passes == 0
    collector.client_gone(160)
    await asyncio.sleep(0)
    assert collector.passes == 1 and collector.departures == 0


async def test_growth_that_connected_clients_do_not_explain_calls_for_a_full_pass() -> None:
    connected = [0]
    collector = Collector(
        lambda: connected[0], check_every=1, objects_per_client=100, min_growth=2_000
    )
    before = gc.get_threshold()
    try:
        collector.take_over(100_000)
        threshold = max(gc.get_freeze_count() // 4, 2_000)
        # Clients connect, with 100 objects each that survive a pass, more than the
        # threshold in all: explained
        connected[0] = threshold // 100 + 50
        clients = [[[n] for n in range(99)] for _ in range(connected[0])]
        gc.collect(0)
        await asyncio.sleep(0)
        assert collector.passes == 0
        # then objects that no client explains, past the threshold
        garbage = [[n] for n in range(threshold + 1_000)]
        gc.collect(0)
        await asyncio.sleep(0)
        assert collector.passes == 1
        del clients, garbage
    finally:
        collector.release()
        gc.set_threshold(*before)


async def test_a_full_pass_does_not_call_for_another() -> None:
    collector = Collector(check_every=1, min_growth=0)
    before = gc.get_threshold()
    try:
        collector.take_over(100_000)
        held = [[n] for n in range(50_000)]  # grown since take_over, no connection to explain it
        collector.full_pass()
        await asyncio.sleep(0)
        assert collector.passes == 1  # its own collection's callback scheduled none
        del held
    finally:
        collector.release()
        gc.set_threshold(*before)


def test_release_puts_everything_back_and_stops_setting_aside(collector: Collector) -> None:
    collector.take_over(5_000)
    collector.release()
    assert gc.get_freeze_count() == 0
    survivor = [object()]
    gc.collect(0)
    assert gc.get_freeze_count() == 0
    del survivor
