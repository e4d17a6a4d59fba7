"""How the report writes numbers: a fixed number of decimals, or "—" when there is none.

Shared by the Markdown report, the plots' labels and the terminal summary, so that a value
reads the same in all three.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DASH", "finite", "fmt", "fmt_rate", "fmt_ratio"]

DASH = "—"


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, or not finite."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt(value: Any, digits: int = 1, *, thousands: bool = False) -> str:
    """``value`` with ``digits`` decimals (and thousands separators), or "—" when missing."""
    number = finite(value)
    if number is None:
        return DASH
    return f"{number:,.{digits}f}" if thousands else f"{number:.{digits}f}"


def fmt_rate(value: float | None) -> str:
    """A rate in messages per second: whole numbers with thousands separators."""
    return fmt(value, 0, thousands=True)


def fmt_ratio(value: float | None) -> str:
    return fmt(value, 2)
