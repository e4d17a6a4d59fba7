from __future__ import annotations

import pytest

from server.intake.dedup import RecentIds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remembers_for_the_window_then_forgets() -> None:
    clock = Clock()
    seen = RecentIds(window_s=30, max_ids=100, clock=clock)
    seen.add("a")
    clock.now += 20
    seen.add("b")
    clock.now += 15  # a is 35 s old, b 15 s
    assert ("a" in seen, "b" in seen) == (False, True)


def test_the_window_is_time_not_count_at_a_high_rate() -> None:
    # Given 2,000 msg/s for 50 s (the old count-based window of 100k forgot the first at 50 s)
    clock = Clock()
    seen = RecentIds(window_s=60, max_ids=1_000_000, clock=clock)
    for n in range(100_001):
        seen.add(str(n))
        clock.now += 1 / 2000
    # Then the first id is still remembered: a redelivery after a 30 s visibility timeout drops
    assert "0" in seen


def test_adding_again_refreshes_a_key() -> None:
    clock = Clock()
    seen = RecentIds(window_s=10, max_ids=100, clock=clock)
    seen.add("a")
    clock.now += 8
    seen.add("a")
    clock.now += 8
    assert "a" in seen


def test_memory_is_bounded_and_what_is_forgotten_early_is_counted() -> None:
    seen = RecentIds(window_s=3600, max_ids=100, clock=Clock())
    for n in range(10_000):
        seen.add(str(n))
    assert len(seen) == 100
    assert seen.forgotten_early == 9_900
    assert "9999" in seen and "0" not in seen


def test_the_window_covers_a_reported_visibility_timeout() -> None:
    seen = RecentIds(window_s=300, max_ids=10, clock=Clock())
    assert not seen.cover(30)
    assert seen.cover(900)
    assert seen.window_s == 900


def test_keys_may_be_message_and_room() -> None:
    seen = RecentIds(window_s=10, max_ids=10, clock=Clock())
    seen.add(("m1", "shop"))
    assert ("m1", "shop") in seen and ("m1", "blog") not in seen


@pytest.mark.parametrize(("window_s", "max_ids"), [(0, 1), (1, 0)])
def test_limits_must_be_positive(window_s: float, max_ids: int) -> None:
    with pytest.raises(ValueError):
        RecentIds(window_s=window_s, max_ids=max_ids)
