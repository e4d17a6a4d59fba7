"""The stop's one deadline (shared/deadline.py), on an injected clock."""

from __future__ import annotations

import threading

from shared.deadline import StopDeadline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_start_fixes_it_less_what_exiting_takes() -> None:
    clock = Clock()
    deadline = StopDeadline(4.0, clock=clock)
    assert deadline.at() is None and deadline.remaining() is None
    assert deadline.start() == 100.0 + 4.0 - StopDeadline.EXIT_S
    clock.now = 102.0
    assert deadline.start() == 103.5  # a later signal moves nothing
    assert deadline.remaining() == 1.5
    clock.now = 110.0
    assert deadline.remaining() == 0.0


def test_given_a_stop_flag_the_first_look_after_it_is_set_fixes_it() -> None:
    clock, stop = Clock(), threading.Event()
    deadline = StopDeadline(4.0, stop=stop, clock=clock)
    assert deadline.at() is None
    stop.set()
    clock.now = 101.0
    assert deadline.at() == 104.5
    clock.now = 103.0
    assert deadline.at() == 104.5
