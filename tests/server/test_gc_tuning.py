"""The server keeps the garbage collector's passes off its long-lived objects (start-up's
frozen, a larger young threshold), and cycles are still collected."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from server.__main__ import tune_garbage_collector


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
    assert gc.get_threshold() == (5_000, middle, 1)  # Python's middle; full after two of them


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
