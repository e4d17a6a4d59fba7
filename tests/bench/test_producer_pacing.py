"""The bench producer offers a low rate as that rate, not as bursts of ten."""

from __future__ import annotations

import pytest

from bench.producer import batch_size


@pytest.mark.parametrize(
    ("rate", "size"), [(0.25, 1), (5, 1), (20, 2), (50, 5), (100, 10), (5_000, 10)]
)
def test_a_batch_holds_at_most_a_tenth_of_a_second_of_the_rate_and_at_most_ten(
    rate: float, size: int
) -> None:
    assert batch_size(rate) == size
