"""State rooms' stores: one server's (server/history/state.py) and cluster mode's, kept by the
append script and read by lua/state.lua, against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from server.history.cluster import RedisBus
from server.history.replay import ReplayBuffer
from server.history.state import Held, LocalState, state_room
from shared.counters import Counters
from shared.envelope import DecodeError, Envelope, parse_body
from shared.settings import load_settings
from shared.wire import Delivery
from tests.processes import Processes, free_port

STREAM = ("/", "orders:1")


def held(offset: int, version: int | None = None, size: int = 10) -> Held:
    return Held(offset, "order", {"offset": offset}, version, size)


def test_state_rooms_match_names_and_prefix_patterns_never_reserved_ones() -> None:
    patterns = ["orders:*", "prices"]
    assert state_room(patterns, "orders:7") and state_room(patterns, "prices")
    assert not state_room(patterns, "pricesx") and not state_room(patterns, None)
    assert not state_room(["*"], "relay:user:alice")


def test_a_version_not_above_the_held_one_is_older_and_no_version_is_always_newer() -> None:
    state = LocalState(max_keys=10, max_bytes=1000, max_total_bytes=10_000)
    state.keep(STREAM, "a", held(1, version=5))
    assert not state.newer(STREAM, "a", 5) and not state.newer(STREAM, "a", 4)
    assert state.newer(STREAM, "a", 6) and state.newer(STREAM, "a", None)
    assert state.newer(STREAM, "b", 1)


def test_a_room_keeps_its_newest_keys_within_its_count_and_bytes() -> None:
    # Given rooms of at most 3 keys and 35 bytes
    state = LocalState(max_keys=3, max_bytes=35, max_total_bytes=10_000)
    # When five keys are kept, then the first again
    for n, key in enumerate("abcde", start=1):
        state.keep(STREAM, key, held(n))
    state.keep(STREAM, "c", held(6, size=20))
    # Then the oldest went first, by count, then by bytes; latest() is oldest first
    assert [h.offset for h in state.latest(STREAM)] == [5, 6]


def test_every_room_together_stays_within_the_total_the_least_recently_updated_going() -> None:
    state = LocalState(max_keys=10, max_bytes=100, max_total_bytes=25)
    state.keep(("/", "a"), "k", held(1))
    state.keep(("/", "b"), "k", held(1))
    state.keep(("/", "c"), "k", held(1))
    assert state.latest(("/", "a")) == [] and len(state.latest(("/", "c"))) == 1


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"key": ""}, "'key'"),
        ({"key": "x" * 201}, "'key'"),
        ({"key": 7}, "'key'"),
        ({"version": -1}, "'version'"),
        ({"version": 1.5}, "'version'"),
        ({"version": True}, "'version'"),
        ({"version": 2**53}, "'version'"),
    ],
)
def test_an_envelope_with_a_bad_key_or_version_is_refused_saying_which(
    fields: dict[str, Any], why: str
) -> None:
    body = orjson.dumps({"event": "order", "data": 1, "room": "orders:1", **fields}).decode()
    with pytest.raises(DecodeError, match=why) as refused:
        parse_body(body, default_event="message")
    assert refused.value.code == "bad_envelope"


def test_key_and_version_survive_the_body_and_the_wire() -> None:
    envelope = Envelope("order", 1, room="orders:1", key="a", version=3)
    assert parse_body(envelope.to_body(), default_event="message") == envelope
    delivery = Delivery("id", envelope)
    assert Delivery.from_json(orjson.loads(orjson.dumps(delivery.to_json()))) == delivery


# --- cluster mode -----------------------------------------------------------------------------
@pytest.fixture
async def bus(processes: Processes) -> AsyncIterator[RedisBus]:
    port = free_port()
    processes.redis(port)
    settings = load_settings(
        {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "STATE_ROOMS": "orders:*",
            "STATE_MAX_KEYS": "2",
        }
    )
    replay = ReplayBuffer(window_s=120, max_events=1000, max_bytes=16 * 1024 * 1024)
    redis_bus = RedisBus(settings, replay=replay, counters=Counters())

    async def take(*_args: Any) -> None:
        pass

    redis_bus.start(take, lambda: None)
    yield redis_bus
    await redis_bus.close()


def update(n: int, key: str, version: int | None, room: str = "orders:1") -> Delivery:
    return Delivery(f"id-{n}", Envelope("order", {"n": n}, room=room, key=key, version=version))


async def test_redis_keeps_each_keys_latest_drops_older_versions_and_bounds_the_count(
    bus: RedisBus,
) -> None:
    # Given updates of keys a, b, c (at most 2 kept), a stale a, and one to a plain room too
    appended, _ = await bus.append(
        [update(1, "a", 2), update(2, "b", None), update(3, "a", 1), update(4, "c", None)], 60
    )
    both = Delivery(
        "id-5", Envelope("order", {"n": 5}, room=["orders:1", "news"], key="b", version=None)
    )
    await bus.append([both], 60)

    # When the state is read
    catch = await bus.latest(STREAM, 1 << 20)

    # Then the stale a was taken (safe to delete) but kept nowhere; a was evicted by count;
    # c and b remain, oldest first, as the payloads clients get
    assert sorted(appended) == ["id-1", "id-2", "id-3", "id-4"]
    payloads = [orjson.loads(orjson.dumps(p)) for _e, p in catch.entries]
    assert [(p["key"], p["data"]["n"], p["offset"]) for p in payloads] == [("c", 4, 3), ("b", 5, 4)]
    assert catch.offset == 4
    assert payloads[1]["room"] == "orders:1" and payloads[1]["epoch"] == catch.epoch


async def test_redis_state_reading_keeps_the_newest_within_the_byte_budget(bus: RedisBus) -> None:
    await bus.append([update(1, "a", None), update(2, "b", None)], 60)
    full = await bus.latest(STREAM, 1 << 20)
    one = await bus.latest(STREAM, full.size - 1)
    assert len(full.entries) == 2 and len(one.entries) == 1
    assert orjson.loads(orjson.dumps(one.entries[0][1]))["key"] == "b"
