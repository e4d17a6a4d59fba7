from __future__ import annotations

import pytest

from server.history.replay import RecoveryFailed, ReplayBuffer, Shared

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


def test_a_forgotten_stream_never_reuses_an_offset_in_the_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stream at offset 5 that is then pushed out of the (here 2-stream) table
    monkeypatch.setattr("server.history.replay.MAX_STREAMS", 2)
    replay = buffer()
    emit(replay, SHOP, 5)
    emit(replay, ("/", "a"), 1)
    emit(replay, ("/", "b"), 1)
    # When it is emitted to again
    emit(replay, SHOP, 3)
    # Then its new offsets are above the old ones (main restarted at 1: a client resuming from
    # its old offset 3 was "recovered" with 4-8 of the new life and silently missed 1-3), and a
    # client that missed old offsets is told to resync
    assert replay.last_offset(SHOP) == 8
    with pytest.raises(RecoveryFailed, match="out of the replay window"):
        replay.since(SHOP, replay.epoch, 3)
    assert [e.offset for e in replay.since(SHOP, replay.epoch, 5)] == [6, 7, 8]


def test_data_shared_by_several_rooms_is_counted_once() -> None:
    # Given one message of 240 KB for 100 rooms
    replay = buffer(max_bytes=16 << 20)
    data = Shared(240_000)
    for n in range(100):
        stream = ("/", f"room{n}")
        replay.append(stream, replay.next_offset(stream), "e", {}, 600, data)
    # Then its data counts once, not 100 times (24 MB would have evicted every other stream)
    assert replay.bytes == 240_000 + 100 * 600
    assert replay.since(("/", "room7"), replay.epoch, 0)[0].bytes == 240_600


def test_shared_data_is_uncounted_when_its_last_entry_goes() -> None:
    replay = buffer(max_events=1, max_bytes=1 << 20)
    data = Shared(1000)
    replay.append(SHOP, 1, "e", {}, 10, data)
    replay.append(ALL, 1, "e", {}, 10, data)
    emit(replay, SHOP, 1)  # pushes the first out of SHOP
    assert replay.bytes == 1000 + 10 + 10
    emit(replay, ALL, 1)  # and the last one sharing the data
    assert replay.bytes == 20


def test_what_the_buffer_holds_stays_bounded_behind_a_quiet_old_entry() -> None:
    # Given one quiet event, then 500,000 in a hot stream that keeps 1,000
    replay = buffer(max_events=1000, max_bytes=1 << 30)
    emit(replay, ("/", "quiet"), 1)
    emit(replay, SHOP, 500_000)
    # Then it holds about what it counts, not 500,001 entries (108 MB on main)
    assert replay.entries_held <= 3 * 1001
