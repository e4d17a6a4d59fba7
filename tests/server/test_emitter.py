from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.intake import emitter as emitter_module
from server.intake.emitter import HOLD_S, Emitter, RoomSender
from server.metrics import ServerMetrics
from server.payload import ClientJSON
from shared import counters as c
from shared.counters import Counters
from shared.envelope import Envelope
from shared.settings import load_settings
from shared.wire import Delivery


class FakeSio:
    """Records emits as a client would decode them; fails for one event name, or for rooms
    listed in `failing`, to show failures are not confirmed."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, str | None, str]] = []
        self.raw: list[Any] = []
        self.failing: set[str] = set()

    async def emit(
        self, event: str, payload: Any, to: str | None = None, namespace: str = "/"
    ) -> None:
        if event == "boom" or to in self.failing:
            raise RuntimeError("emit failed")
        self.raw.append(payload)
        decoded = json.loads(ClientJSON.dumps(payload))
        self.emitted.append((event, decoded, to, namespace))


def replay() -> ReplayBuffer:
    return ReplayBuffer(window_s=60, max_events=100, max_bytes=100_000)


class Subject:
    """An emitter on a server's own history, and the counters they count into."""

    def __init__(self, sio: FakeSio, **settings: str) -> None:
        self.counters = Counters()
        metrics = ServerMetrics(self.counters)
        sender = RoomSender(sio=sio, metrics=metrics)  # type: ignore[arg-type]
        history = LocalHistory(replay(), counters=self.counters)
        history.start(sender.send, on_gap=lambda: None)
        self.emitter = Emitter(
            settings=load_settings(settings),
            history=history,
            sender=sender,
            counters=self.counters,
            metrics=metrics,
        )

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        return await self.emitter.emit(deliveries)


def emitter(sio: FakeSio, **settings: str) -> Subject:
    return Subject(sio, **settings)


def delivery(
    message_id: str, event: str = "e", room: str | tuple[str, ...] | None = None, data: Any = None
) -> Delivery:
    return Delivery(message_id, Envelope(event, data or {"id": message_id}, room, "/"), 1000)


async def test_emits_each_delivery_with_its_id_and_confirms_it() -> None:
    sio = FakeSio()
    confirmed = await emitter(sio).emit([delivery("a", room="r"), delivery("b")])
    assert confirmed == ["a", "b"]
    assert [(e, p["id"], p["data"], p["offset"], to) for e, p, to, _ns in sio.emitted] == [
        ("e", "a", {"id": "a"}, 1, "r"),
        ("e", "b", {"id": "b"}, 1, "relay:all"),  # a stream of its own, and every client's room
    ]
    assert sio.emitted[0][1]["sent_ms"] == 1000


async def test_a_redelivery_is_dropped_but_still_confirmed() -> None:
    sio = FakeSio()
    relay = emitter(sio)
    await relay.emit([delivery("a")])
    confirmed = await relay.emit([delivery("a"), delivery("b")])
    assert confirmed == ["a", "b"]
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["a", "b"]
    assert (relay.counters.get(c.EMITTED), relay.counters.get(c.DUPLICATE_DROPPED)) == (2, 1)


async def test_a_failed_emit_is_not_confirmed_and_not_remembered() -> None:
    sio = FakeSio()
    relay = emitter(sio)
    confirmed = await relay.emit([delivery("a", event="boom"), delivery("b")])
    assert confirmed == ["b"]
    assert relay.counters.get(c.EMIT_FAILED) == 1
    # SQS redelivers it; this time it goes out
    assert await relay.emit([delivery("a")]) == ["a"]


async def test_a_partly_emitted_message_redelivered_goes_only_to_the_rooms_that_missed_it() -> None:
    # Given a message for three rooms whose emit fails at the third
    sio = FakeSio()
    relay = emitter(sio)
    sio.failing = {"c"}
    assert await relay.emit([delivery("m", room=("a", "b", "c"))]) == []
    # When SQS redelivers it and the third room works now
    sio.failing = set()
    assert await relay.emit([delivery("m", room=("a", "b", "c"))]) == ["m"]
    # Then a and b got it once (main repeated them, at new offsets), c once
    assert [(to, p["offset"]) for _e, p, to, _ns in sio.emitted] == [("a", 1), ("b", 1), ("c", 2)]


async def test_a_message_for_many_rooms_encodes_its_data_once() -> None:
    sio = FakeSio()
    rooms = tuple(f"room{n}" for n in range(50))
    await emitter(sio).emit([delivery("m", room=rooms, data={"big": "x" * 10_000})])
    assert len(sio.raw) == 50
    assert len({id(payload["data"]) for payload in sio.raw}) == 1  # one encoded fragment
    assert all(p["data"] == {"big": "x" * 10_000} for _e, p, _to, _ns in sio.emitted)


async def test_non_finite_data_from_a_worker_is_never_sent_to_clients() -> None:
    sio = FakeSio()
    relay = emitter(sio)
    confirmed = await relay.emit([delivery("nan", data={"x": float("nan")}), delivery("ok")])
    assert confirmed == ["ok"]
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["ok"]
    assert relay.counters.get(c.EMIT_FAILED) == 1


async def test_the_memory_of_ids_is_bounded_by_the_setting_and_counts_what_it_forgot() -> None:
    sio = FakeSio()
    relay = emitter(sio, DEDUP_MAX_IDS="2")
    await relay.emit([delivery("a"), delivery("b"), delivery("c")])
    await relay.emit([delivery("a")])  # forgotten early: emitted again
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["a", "b", "c", "a"]
    assert relay.counters.get(c.DEDUP_FORGOTTEN_EARLY) == 2


def test_a_reported_visibility_timeout_widens_the_window() -> None:
    relay = emitter(FakeSio(), DEDUP_WINDOW_S="60", ACK_TIMEOUT_S="5")
    relay.emitter.cover_visibility_timeout(600)
    assert relay.emitter.dedup_window_s == 605
    relay.emitter.cover_visibility_timeout(None)
    relay.emitter.cover_visibility_timeout(30)  # never narrows
    assert relay.emitter.dedup_window_s == 605


class FakeTime:
    """Stands in for the `time` module in server/intake/emitter.py: `perf_counter` is a clock that
    moves only when a test advances it; `time` is the real wall clock (for sent/emitted ms)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(emitter_module, "time", fake)
    return fake


class TimedSio(FakeSio):
    """Notes each emit in `marks`; each holds the loop `hold_s` by the fake clock, without an
    await, as a broadcast to many clients does."""

    def __init__(self, marks: list[str], clock: FakeTime, hold_s: float) -> None:
        super().__init__()
        self.marks, self.clock, self.hold_s = marks, clock, hold_s

    async def emit(self, *args: Any, **kwargs: Any) -> None:
        self.clock.now += self.hold_s
        self.marks.append("emit")
        await super().emit(*args, **kwargs)


async def beside_another_task(clock: FakeTime, hold_s: float) -> list[str]:
    """Emit a batch of three while another task marks each turn it gets; the marks."""
    marks: list[str] = []

    async def other_client() -> None:
        while True:
            marks.append("other")
            await asyncio.sleep(0)

    other = asyncio.create_task(other_client())
    await asyncio.sleep(0)
    marks.clear()
    confirmed = await emitter(TimedSio(marks, clock, hold_s)).emit([delivery(x) for x in "abc"])
    other.cancel()
    assert confirmed == ["a", "b", "c"]
    return marks


async def test_a_batch_that_holds_the_loop_lets_it_run_between_two_emits(clock: FakeTime) -> None:
    marks = await beside_another_task(clock, HOLD_S * 1.5)  # each emit holds it past HOLD_S
    # the loop served the other task between every two emits, not only after the batch
    emits = [i for i, m in enumerate(marks) if m == "emit"]
    assert len(emits) == 3
    assert all("other" in marks[a:b] for a, b in itertools.pairwise(emits))


async def test_emits_that_together_hold_the_loop_less_than_hold_s_do_not_yield_it(
    clock: FakeTime,
) -> None:
    # five clients' emits: the hot path is unchanged, however long the real machine takes
    assert await beside_another_task(clock, HOLD_S / 4) == ["emit", "emit", "emit"]


async def test_after_a_failed_emit_its_fifo_groups_later_messages_wait_and_other_groups_go_on() -> (
    None
):
    # Given a FIFO batch: g1's first message fails to emit, g1's second and g2's follow
    sio = FakeSio()
    relay = emitter(sio)
    batch = [
        replace(delivery("a1", event="boom"), group="g1"),
        replace(delivery("a2"), group="g1"),
        replace(delivery("b1"), group="g2"),
    ]

    # When the batch is emitted
    confirmed = await relay.emit(batch)

    # Then g1's second message was not emitted before its first (nor confirmed: the worker
    # returns it with the failed one), and g2 went on
    assert confirmed == ["b1"]
    assert [p["id"] for _e, p, _to, _ns in sio.emitted] == ["b1"]
