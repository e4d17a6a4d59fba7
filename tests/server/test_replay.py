from __future__ import annotations

import pytest

from server.replay import RecoveryFailed, ReplayBuffer

SHOP = ("/", "shop")
ALL = ("/", None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buffer(clock: Clock | None = None, **limits: int) -> ReplayBuffer:
    defaults = {"window_s": 60, "max_events": 100, "max_bytes": 10_000}
    return ReplayBuffer(**(defaults | limits), clock=clock or Clock())  # type: ignore[arg-type]


def emit(replay: ReplayBuffer, stream: tuple[str, str | None], n: int, size: int = 10) -> None:
    for _ in range(n):
        offset = replay.next_offset(stream)
        replay.append(stream, offset, "e", {"offset": offset}, size)


def test_offsets_count_per_stream() -> None:
    replay = buffer()
    emit(replay, SHOP, 3)
    emit(replay, ALL, 2)
    assert (replay.last_offset(SHOP), replay.last_offset(ALL), replay.next_offset(("/", "x"))) == (
        3,
        2,
        1,
    )


def test_since_returns_the_missed_entries_in_order() -> None:
    replay = buffer()
    emit(replay, SHOP, 5)
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 2)] == [3, 4, 5]
    assert replay.since(SHOP, replay.epoch, 5) == []
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 0)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("epoch", "offset", "reason"),
    [
        ("other", 1, "restarted"),
        (None, 1, "restarted"),
        ("EPOCH", 9, "ahead of the stream"),
        ("EPOCH", -1, "non-negative integer"),
        ("EPOCH", "1", "non-negative integer"),
        ("EPOCH", True, "non-negative integer"),
    ],
)
def test_recovery_fails_with_a_reason(epoch: str | None, offset: object, reason: str) -> None:
    replay = buffer()
    emit(replay, SHOP, 3)
    with pytest.raises(RecoveryFailed) as caught:
        replay.since(SHOP, replay.epoch if epoch == "EPOCH" else epoch, offset)
    assert reason in caught.value.reason


def test_count_bound_per_stream() -> None:
    replay = buffer(max_events=3)
    emit(replay, SHOP, 5)
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 2)] == [3, 4, 5]
    with pytest.raises(RecoveryFailed, match="out of the replay window"):
        replay.since(SHOP, replay.epoch, 1)


def test_byte_bound_over_all_streams() -> None:
    replay = buffer(max_bytes=50)
    emit(replay, SHOP, 3, size=20)  # 60 bytes: the oldest goes
    emit(replay, ALL, 1, size=20)  # 60 again: the next oldest goes
    assert replay.bytes == 40
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 2)] == [3]
    with pytest.raises(RecoveryFailed):
        replay.since(SHOP, replay.epoch, 1)


def test_time_bound() -> None:
    clock = Clock()
    replay = buffer(clock)
    emit(replay, SHOP, 2)
    clock.now += 61
    emit(replay, SHOP, 1)
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 2)] == [3]
    with pytest.raises(RecoveryFailed):
        replay.since(SHOP, replay.epoch, 0)


def test_a_zero_window_keeps_offsets_but_replays_nothing() -> None:
    replay = buffer(max_events=0)
    emit(replay, SHOP, 2)
    assert replay.since(SHOP, replay.epoch, 2) == []
    with pytest.raises(RecoveryFailed):
        replay.since(SHOP, replay.epoch, 1)
