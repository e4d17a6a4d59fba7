from __future__ import annotations

import threading

import pytest

from shared import counters as c
from shared.counters import Counters


def test_counts_by_name_and_reason() -> None:
    counters = Counters()
    counters.inc(c.DEAD_LETTERED, reason="not_json")
    counters.inc(c.DEAD_LETTERED, 2, reason="too_large")
    counters.inc(c.DELIVERED, 5)
    assert counters.get(c.DEAD_LETTERED, "too_large") == 2
    assert counters.total(c.DEAD_LETTERED) == 3
    assert counters.summary((c.DELIVERED, c.DEAD_LETTERED, c.RETURNED)) == (
        "delivered=5 dead_lettered[not_json]=1 dead_lettered[too_large]=2 returned=0"
    )


def test_an_unknown_name_is_a_bug() -> None:
    with pytest.raises(ValueError):
        Counters().inc("delivred")


def test_threads_do_not_lose_counts() -> None:
    counters = Counters()
    threads = [
        threading.Thread(target=lambda: [counters.inc(c.RECEIVED) for _ in range(10_000)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counters.get(c.RECEIVED) == 40_000
