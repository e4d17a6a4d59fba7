from __future__ import annotations

from typing import Any

from server.replay import ReplayBuffer
from server.subscriber import Subscriber
from shared import counters as c
from shared.envelope import Envelope
from shared.settings import load_settings
from shared.wire import Delivery


class FakeSio:
    """Records emits; fails for one event name to show failures are not confirmed."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, str | None, str]] = []

    async def emit(
        self, event: str, payload: Any, to: str | None = None, namespace: str = "/"
    ) -> None:
        if event == "boom":
            raise RuntimeError("emit failed")
        self.emitted.append((event, payload, to, namespace))


def replay() -> ReplayBuffer:
    return ReplayBuffer(window_s=60, max_events=100, max_bytes=100_000)


def delivery(message_id: str, event: str = "e", room: str | None = None) -> Delivery:
    return Delivery(message_id, Envelope(event, {"id": message_id}, room, "/"), 1000)


async def test_emits_each_delivery_with_its_id_and_confirms_it() -> None:
    sio = FakeSio()
    subscriber = Subscriber(sio=sio, settings=load_settings({}), replay=replay())  # type: ignore[arg-type]
    confirmed = await subscriber.emit([delivery("a", room="r"), delivery("b")])
    assert confirmed == ["a", "b"]
    assert [(e, p["id"], p["data"], p["offset"], to) for e, p, to, _ns in sio.emitted] == [
        ("e", "a", {"id": "a"}, 1, "r"),
        ("e", "b", {"id": "b"}, 1, "relay:all"),  # a stream of its own, and every client's room
    ]
    assert sio.emitted[0][1]["sent_ms"] == 1000


async def test_a_redelivery_is_dropped_but_still_confirmed() -> None:
    sio = FakeSio()
    subscriber = Subscriber(sio=sio, settings=load_settings({}), replay=replay())  # type: ignore[arg-type]
    await subscriber.emit([delivery("a")])
    confirmed = await subscriber.emit([delivery("a"), delivery("b")])
    assert confirmed == ["a", "b"]
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["a", "b"]
    assert (subscriber.counters.get(c.EMITTED), subscriber.counters.get(c.DUPLICATE_DROPPED)) == (
        2,
        1,
    )


async def test_a_failed_emit_is_not_confirmed_and_not_remembered() -> None:
    sio = FakeSio()
    subscriber = Subscriber(sio=sio, settings=load_settings({}), replay=replay())  # type: ignore[arg-type]
    confirmed = await subscriber.emit([delivery("a", event="boom"), delivery("b")])
    assert confirmed == ["b"]
    assert subscriber.counters.get(c.EMIT_FAILED) == 1
    # SQS redelivers it; this time it goes out
    assert await subscriber.emit([delivery("a")]) == ["a"]


async def test_the_window_is_bounded_by_the_setting() -> None:
    sio = FakeSio()
    subscriber = Subscriber(sio=sio, settings=load_settings({"DEDUP_WINDOW": "2"}), replay=replay())  # type: ignore[arg-type]
    await subscriber.emit([delivery("a"), delivery("b"), delivery("c")])
    await subscriber.emit([delivery("a")])  # forgotten: emitted again
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["a", "b", "c", "a"]
