from __future__ import annotations

import pytest

from server.dedup import RecentIds


def test_remembers_up_to_capacity_and_forgets_the_oldest() -> None:
    seen = RecentIds(3)
    for message_id in "abcd":
        seen.add(message_id)
    assert [m in seen for m in "abcd"] == [False, True, True, True]
    assert len(seen) == 3


def test_adding_again_refreshes_an_id() -> None:
    seen = RecentIds(2)
    seen.add("a")
    seen.add("b")
    seen.add("a")
    seen.add("c")
    assert "a" in seen and "b" not in seen


def test_memory_stays_bounded_whatever_the_traffic() -> None:
    seen = RecentIds(100)
    for n in range(10_000):
        seen.add(str(n))
    assert len(seen) == 100


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentIds(0)
