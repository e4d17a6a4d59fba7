"""What a client keeps to resume: positions per stream and the ids it delivered."""

from __future__ import annotations

from typing import Any

import pytest

from client.streams import Position, Recovery, Streams


def event(offset: int, *, room: str | None = None, epoch: str = "e1", id: str = "") -> Any:
    return {"id": id or f"{epoch}-{room}-{offset}", "room": room, "offset": offset, "epoch": epoch}


def test_an_event_at_or_below_its_streams_position_is_a_repeat() -> None:
    streams = Streams()
    assert [streams.accept(event(n)) for n in (1, 2, 2, 1, 3)] == [True, True, False, False, True]
    assert streams.since(None) == {"epoch": "e1", "offset": 3}


def test_streams_are_apart_and_one_message_in_two_rooms_reaches_the_app_twice() -> None:
    streams = Streams()
    assert streams.accept(event(5, room="a", id="m1"))
    assert streams.accept(event(9, room="b", id="m1"))
    assert streams.since("a") == {"epoch": "e1", "offset": 5}
    assert streams.since("b") == {"epoch": "e1", "offset": 9}


def test_a_redelivery_under_a_new_epoch_is_dropped_by_its_id() -> None:
    # Given a message delivered in epoch e1, and the server restarted (e2)
    streams = Streams()
    assert streams.accept(event(7, id="m1"))
    # When the same message comes again with a new epoch and offset, then a new one
    assert not streams.accept(event(1, epoch="e2", id="m1"))
    assert streams.accept(event(2, epoch="e2", id="m2"))
    # Then only the new one counts, and the stream goes on in the new epoch
    assert streams.since(None) == {"epoch": "e2", "offset": 2}


def test_ids_are_remembered_up_to_a_bound() -> None:
    streams = Streams(max_ids=3)
    for n in range(1, 6):
        streams.accept(event(n, epoch=f"e{n}", id=f"m{n}"))
    assert not streams.accept(event(1, epoch="x", id="m5"))  # recent: remembered
    assert streams.accept(event(1, epoch="y", id="m1"))  # forgotten: memory is bounded
    with pytest.raises(ValueError, match="max_ids"):
        Streams(max_ids=0)


def test_an_answer_gives_the_position_of_a_stream_that_saw_nothing() -> None:
    streams = Streams()
    assert streams.since("shop") is None
    assert (
        streams.answered("shop", {"ok": True, "room": "shop", "epoch": "e1", "offset": 4}) is None
    )
    assert streams.since("shop") == {"epoch": "e1", "offset": 4}
    assert not streams.accept(event(4, room="shop"))  # already at the position
    assert streams.accept(event(5, room="shop"))


def test_a_resume_answer_is_reported_and_a_failed_one_moves_the_position_on() -> None:
    streams = Streams()
    streams.accept(event(3, room="shop"))
    ok = {"ok": True, "recovered": True, "replayed": 2, "epoch": "e1", "offset": 5}
    assert streams.answered("shop", ok) == Recovery("shop", True, 2)
    failed = {"recovered": False, "replayed": 0, "reason": "out of the window", "epoch": "e1"}
    assert streams.answered("shop", failed | {"offset": 40}) == Recovery(
        "shop", False, 0, "out of the window"
    )
    assert streams.position("shop") == Position("e1", 40)
    # a failed resume is believed even when it is behind what the client thought it had
    streams.answered("shop", failed | {"offset": 2})
    assert streams.position("shop") == Position("e1", 2)


def test_an_older_answer_never_moves_the_position_back() -> None:
    streams = Streams()
    for n in range(1, 8):
        streams.accept(event(n))
    streams.answered(None, {"room": None, "epoch": "e1", "offset": 5})
    assert streams.position(None) == Position("e1", 7)


def test_a_left_room_starts_afresh() -> None:
    streams = Streams()
    streams.accept(event(3, room="shop"))
    streams.forget("shop")
    assert streams.since("shop") is None


def test_what_is_not_a_relay_event_passes_untouched() -> None:
    streams = Streams()
    assert streams.accept({"data": {"id": 1}, "from": "sid"})  # a relayed client event
    assert streams.accept("text")
    assert Position.of({"epoch": "e", "offset": True}) is None
