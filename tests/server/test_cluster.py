"""Cluster mode's shared bus and history (server/history/cluster.py) against a real
redis-server: two buses stand for two servers sharing one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from devtools.netcut import NetCut
from server.history import cluster as cluster_module
from server.history.base import HistoryUnavailable
from server.history.cluster import RedisBus
from server.history.redis_history import RedisHistory
from server.history.redis_keys import parse_stream_key, stream_key
from server.history.replay import ReplayBuffer, Stream
from server.intake.dedup import RecentIds
from server.payload import client_payload, encode_data, payload_head, payload_in_room
from shared import counters as c
from shared.counters import Counters
from shared.envelope import Envelope
from shared.settings import load_settings
from shared.wire import Delivery
from tests.integration.helpers import eventually
from tests.processes import Process, Processes, free_port


@dataclass
class Server:
    """One bus with its own replay buffer, and what its feed reader published."""

    bus: RedisBus
    replay: ReplayBuffer
    published: list[tuple[Stream, int, dict[str, Any]]] = field(default_factory=list)
    gaps: int = 0

    async def publish(
        self, stream: Stream, offset: int, _event: str, payload: Any, _size: int, _sent: Any
    ) -> None:
        self.published.append((stream, offset, orjson.loads(orjson.dumps(payload))))

    def gap(self) -> None:
        self.gaps += 1


@dataclass
class Cluster:
    port: int
    processes: Processes
    redis: Process
    make: Callable[..., Server]


@pytest.fixture
async def cluster(processes: Processes) -> AsyncIterator[Cluster]:
    port = free_port()
    made: list[Server] = []

    def make(**env: str) -> Server:
        settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{port}/0", **env})
        replay = ReplayBuffer(window_s=120, max_events=1000, max_bytes=16 * 1024 * 1024)
        server = Server(RedisBus(settings, replay=replay, counters=Counters()), replay)
        server.bus.start(server.publish, server.gap)
        made.append(server)
        return server

    yield Cluster(port, processes, processes.redis(port), make)
    for server in made:
        await server.bus.close()


def delivery(n: int, room: str | list[str] | None = None) -> Delivery:
    return Delivery(f"id-{n}", Envelope("e", {"n": n}, room=room), sent_ms=1, received_ms=2)


async def started(*servers: Server) -> None:
    await eventually(lambda: all(s.bus.healthy for s in servers), what="the feed readers")


def test_stream_keys_name_every_stream_unambiguously() -> None:
    streams = [("/", None), ("/", "a"), ("/a", None), ("/", "1:/x"), ("/ns:1", "room")]
    assert [parse_stream_key(stream_key(s)) for s in streams] == streams
    assert len({stream_key(s) for s in streams}) == len(streams)


def test_the_payload_built_in_two_steps_is_the_clients_payload() -> None:
    # Given a message's shared part, as the append stores it in Redis
    message = delivery(7, "shop")
    data, _size = encode_data(message.envelope.data)
    head = payload_head(message, data, emitted_ms=5)

    # When a feed reader completes it for one room
    payload = payload_in_room(head, "shop", 3, b"ep")

    # Then it is, byte for byte, what feed readers have always emitted, and holds exactly
    # the fields of a server's own payload
    assert payload == (
        b'{"id":"id-7","data":{"n":7},"sent_ms":1,"received_ms":2,"emitted_ms":5,'
        b'"room":"shop","offset":3,"epoch":"ep"}'
    )
    local = orjson.loads(orjson.dumps(client_payload(message, "shop", 3, "ep", data)))
    assert orjson.loads(payload) == local | {"emitted_ms": 5}
    assert payload_in_room(head, None, 1, b"ep").endswith(b'"room":null,"offset":1,"epoch":"ep"}')


async def test_the_cluster_history_emits_what_another_server_appended_and_resumes_from_it(
    cluster: Cluster,
) -> None:
    # Given two servers' histories on one Redis, each emitting through its own publish
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{cluster.port}/0"})
    sent: dict[str, list[tuple[Stream, str, Any]]] = {"a": [], "b": []}
    histories = {}
    for name in sent:
        counters = Counters()
        replay = ReplayBuffer(window_s=120, max_events=1000, max_bytes=16 * 1024 * 1024)
        history = RedisHistory(settings, replay=replay, counters=counters)

        async def publish(
            stream: Stream, event: str, payload: Any, _sent: Any, _ms: int, name: str = name
        ) -> None:
            sent[name].append((stream, event, orjson.loads(orjson.dumps(payload))))

        history.start(publish, on_gap=lambda: None)
        histories[name] = (history, counters)
    (a, a_counters), (b, b_counters) = histories["a"], histories["b"]
    try:
        await eventually(lambda: a.problem is None and b.problem is None, what="both reading")
        assert (a.redis_healthy, b.redis_healthy) == (True, True)

        # When a batch with a duplicate reaches a
        seen = RecentIds(window_s=300, max_ids=100)
        batch = [delivery(n, "shop") for n in range(3)]
        assert await a.append(batch, seen) == ["id-0", "id-1", "id-2"]
        assert await a.append(batch[:1], seen) == ["id-0"]

        # Then b emits each event once, with the shared epoch and its stream's offset
        await eventually(lambda: len(sent["b"]) == 3, what="3 events emitted by b")
        assert [(s, e, p["offset"], p["epoch"]) for s, e, p in sent["b"]] == [
            (("/", "shop"), "e", n, a.epoch) for n in (1, 2, 3)
        ]
        assert b.epoch == a.epoch
        assert (a_counters.get(c.APPENDED), a_counters.get(c.DUPLICATE_DROPPED)) == (3, 1)
        await eventually(lambda: b_counters.get(c.EMITTED) == 3, what="b counting its emits")

        # And a client that saw offset 1 resumes on b: what it missed, then the position
        catch = await b.catch_up(("/", "shop"), {"epoch": a.epoch, "offset": 1}, 10**6)
        assert catch.failure is None and catch.offset == 3
        assert [orjson.loads(orjson.dumps(p))["offset"] for _e, p in catch.entries] == [2, 3]
        assert b.after(("/", "shop"), catch.offset) == []
        assert b.position(("/", "shop"), catch.offset) == 3
    finally:
        await a.close()
        await b.close()


async def test_every_server_emits_every_event_with_the_same_offset_in_the_same_order(
    cluster: Cluster,
) -> None:
    # Given two servers on one Redis
    a, b = cluster.make(), cluster.make()
    await started(a, b)

    # When batches reach either of them, a message to two rooms among them, some twice
    batch = [delivery(0), delivery(1, ["x", "y"]), delivery(2, "x"), delivery(3)]
    appended, duplicates = await a.bus.append(batch, 300)
    again, repeated = await b.bus.append([delivery(2, "x"), delivery(4, "y")], 300)

    # Then each message is appended once, cluster-wide
    assert appended == ["id-0", "id-1", "id-2", "id-3"] and duplicates == []
    assert again == ["id-4"] and repeated == ["id-2"]

    # And both servers publish the same events, in the same order, offsets counting per stream
    await eventually(lambda: len(a.published) == len(b.published) == 6, what="6 events each")
    assert a.published == b.published
    offsets = [(stream, offset, p["id"]) for stream, offset, p in a.published]
    assert offsets == [
        (("/", None), 1, "id-0"),
        (("/", "x"), 1, "id-1"),
        (("/", "y"), 1, "id-1"),
        (("/", "x"), 2, "id-2"),
        (("/", None), 2, "id-3"),
        (("/", "y"), 2, "id-4"),
    ]
    # What a client receives: today's payload, with the cluster's epoch
    payload = a.published[1][2]
    assert payload == {
        "id": "id-1",
        "data": {"n": 1},
        "room": "x",
        "offset": 1,
        "epoch": a.replay.epoch,
        "sent_ms": 1,
        "received_ms": 2,
        "emitted_ms": payload["emitted_ms"],
    }
    assert a.replay.epoch == b.replay.epoch


async def test_a_resume_on_another_server_gets_exactly_what_was_missed(cluster: Cluster) -> None:
    a, b = cluster.make(), cluster.make()
    await started(a, b)
    await a.bus.append([delivery(n, "shop") for n in range(6)], 300)
    await eventually(lambda: len(b.published) == 6, what="6 events on b")

    # A client of a that saw offset 2 resumes on b
    catch = await b.bus.catch_up(("/", "shop"), {"epoch": a.replay.epoch, "offset": 2}, 10**6)

    assert catch.failure is None
    assert [orjson.loads(orjson.dumps(p))["data"]["n"] for _e, p in catch.entries] == [2, 3, 4, 5]
    assert catch.offset == 6  # the local buffer continues from here

    # A client that knows nothing yet just learns the position
    fresh = await b.bus.catch_up(("/", "shop"), None, 10**6)
    assert (fresh.entries, fresh.offset, fresh.failure) == ([], 6, None)


async def test_what_cannot_be_recovered_is_said(cluster: Cluster) -> None:
    a = cluster.make(REPLAY_MAX_EVENTS="5")
    await started(a)
    await a.bus.append([delivery(n, "shop") for n in range(10)], 300)
    epoch = a.replay.epoch

    async def since(offset: int, budget: int = 10**6) -> Any:
        return await a.bus.catch_up(("/", "shop"), {"epoch": epoch, "offset": offset}, budget)

    # Redis trimmed the history to its last 5 events
    gone = await since(2)
    assert gone.failure == "offset 2 is out of the replay window" and not gone.entries
    assert len((await since(5)).entries) == 5
    assert "ahead of the stream" in str((await since(11)).failure)
    # One resume replays at most its byte budget
    big = await since(5, budget=100)
    assert big.refused and not big.entries
    # An offset that is not one
    odd = await a.bus.catch_up(("/", "shop"), {"epoch": epoch, "offset": "7"}, 10**6)
    assert "non-negative integer" in str(odd.failure)


async def test_redis_bounds_the_history_by_bytes_over_all_streams(cluster: Cluster) -> None:
    # Given a history of at most 20 kB in all (REPLAY_MAX_BYTES), and ~1 kB messages spread
    # over three rooms
    a = cluster.make(REPLAY_MAX_BYTES="20000")
    await started(a)
    rooms = ["a", "b", "c"]
    for first in range(0, 120, 10):
        batch = [
            Delivery(f"id-{n}", Envelope("e", "x" * 1000, room=rooms[n % 3]), None, None)
            for n in range(first, first + 10)
        ]
        await a.bus.append(batch, 300)
        # the reader keeps up (as a server's does): one lagging by 20 kB would find the feed
        # trimmed past it, and that is a gap, not this test's subject
        await eventually(lambda n=first + 10: len(a.published) == n, what="the batch published")

    # Then what Redis holds of them stays within the bound: the oldest were trimmed
    redis, feed = a.bus._redis, "relay:feed"
    held = await redis.xrange(feed)
    assert 10 <= len(held) <= 20
    assert sum(len(fields[b"h"]) for _id, fields in held) <= 20_000
    assert int(await redis.get("relay:feed:bytes")) == sum(int(f[b"z"]) for _i, f in held)
    # ... and a resume from before what is kept says so, while a recent one replays exactly
    epoch = a.replay.epoch
    old = await a.bus.catch_up(("/", "a"), {"epoch": epoch, "offset": 1}, 10**6)
    assert old.failure == "offset 1 is out of the replay window" and not old.entries
    recent = await a.bus.catch_up(("/", "b"), {"epoch": epoch, "offset": 38}, 10**6)
    assert recent.failure is None
    assert [orjson.loads(orjson.dumps(p))["id"] for _e, p in recent.entries] == ["id-115", "id-118"]


async def test_a_message_to_many_rooms_is_stored_once(cluster: Cluster) -> None:
    a = cluster.make()
    await started(a)
    # A 100 kB message to 100 rooms (MAX_MESSAGE_ROOMS)
    rooms = [f"room-{n}" for n in range(100)]
    big = Delivery("id-big", Envelope("e", "x" * 100_000, room=rooms), None, None)
    await a.bus.append([big], 300)
    await eventually(lambda: len(a.published) == 100, what="one event per room")

    # Redis holds its data once (it held it once per room: over 10 MB; now 100 kB, plus about
    # 180 bytes per room: its index entry and its offset)
    redis = a.bus._redis
    used = 0
    async for key in redis.scan_iter(match="relay:*"):
        used += await redis.memory_usage(key, samples=0) or 0
    assert used < 160_000
    # and each room's resume still gets it, with the room's own offset
    catch = await a.bus.catch_up(("/", "room-7"), {"epoch": a.replay.epoch, "offset": 0}, 10**6)
    ((_event, payload),) = catch.entries
    assert orjson.loads(orjson.dumps(payload))["room"] == "room-7"
    assert [offset for _s, offset, _p in a.published] == [1] * 100


async def test_a_client_that_joined_a_stream_before_its_first_event_resumes_from_there(
    cluster: Cluster,
) -> None:
    a = cluster.make()
    await started(a)
    joined = await a.bus.catch_up(("/", "new"), None, 10**6)
    await a.bus.append([delivery(1, "new")], 300)
    catch = await a.bus.catch_up(
        ("/", "new"), {"epoch": a.replay.epoch, "offset": joined.offset}, 10**6
    )
    assert catch.failure is None and len(catch.entries) == 1


async def test_a_stream_whose_position_expired_never_hands_an_offset_out_again(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given positions kept 1 s after a stream's last event (REDIS_STREAM_TTL_S), marked every
    # 0.2 s, and a quiet stream at offset 3 beside a busier one
    monkeypatch.setattr(cluster_module, "MARK_S", 0.2)
    a = cluster.make(REDIS_STREAM_TTL_S="1", REPLAY_WINDOW_S="1")
    await started(a)
    await a.bus.append([delivery(n, "busy") for n in range(10)], 300)
    await a.bus.append([delivery(n, "quiet") for n in range(10, 13)], 300)
    redis, quiet = a.bus._redis, "relay:offset:1:/quiet"
    assert int(await redis.get(quiet)) == 3
    assert 0 < await redis.pttl(quiet) <= 1000

    # When it stays idle past that while the other goes on, Redis forgets its position
    n, deadline = 100, time.monotonic() + 10
    while await redis.exists(quiet):
        assert time.monotonic() < deadline, "the quiet stream's position did not expire"
        n += 1
        await a.bus.append([delivery(n, "busy")], 300)
        await asyncio.sleep(0.05)  # paces the busy stream; the loop waits on the key itself
    assert await redis.hlen("relay:offset:marks") <= 8  # the marks of the last TTL, no more

    # Then, back, it starts above every offset it had: a client that saw offset 3 is told it
    # cannot recover, not handed new events under old offsets
    await a.bus.append([delivery(1000, "quiet")], 300)
    assert int(await redis.get(quiet)) > 3
    catch = await a.bus.catch_up(("/", "quiet"), {"epoch": a.replay.epoch, "offset": 3}, 10**6)
    assert catch.failure == "offset 3 is out of the replay window" and not catch.entries


async def test_the_epoch_changes_only_when_redis_lost_its_data(cluster: Cluster) -> None:
    a = cluster.make()
    await started(a)
    await a.bus.append([delivery(1, "shop")], 300)
    epoch = a.replay.epoch

    # A server that starts later (or again) keeps the epoch
    b = cluster.make()
    await started(b)
    await eventually(lambda: b.replay.epoch == epoch, what="b adopting the epoch")

    # Redis restarted without its data: a new epoch, and a resume from the old one says so
    await a.bus._redis.flushall()
    await a.bus.append([delivery(2, "shop")], 300)
    assert a.replay.epoch != epoch
    catch = await a.bus.catch_up(("/", "shop"), {"epoch": epoch, "offset": 1}, 10**6)
    assert "is not the history's" in str(catch.failure)
    # what the new epoch holds is still sent
    assert [orjson.loads(orjson.dumps(p))["id"] for _e, p in catch.entries] == ["id-2"]


async def test_with_redis_down_nothing_is_confirmed_and_it_resumes_by_itself(
    cluster: Cluster,
) -> None:
    a = cluster.make()
    await started(a)
    await a.bus.append([delivery(1)], 300)

    # When Redis goes away
    cluster.redis.stop()
    with pytest.raises(HistoryUnavailable):
        await a.bus.append([delivery(2)], 300)
    await eventually(lambda: not a.bus.healthy, what="the bus noticing")

    # Then, back (from its append-only file), the same epoch and nothing lost
    epoch = a.replay.epoch
    cluster.processes.redis(cluster.port, name="redis-again")
    await eventually(lambda: a.bus.healthy, timeout_s=15, what="the bus reconnecting")
    assert await a.bus.append([delivery(2)], 300) == (["id-2"], [])
    assert await a.bus.append([delivery(1)], 300) == ([], ["id-1"])  # still remembered
    await eventually(lambda: len(a.published) == 2, what="both events published")
    assert [offset for _s, offset, _p in a.published] == [1, 2]
    assert a.replay.epoch == epoch and a.gaps == 0


async def test_a_server_cut_off_past_what_the_feed_keeps_sends_its_clients_to_resume(
    cluster: Cluster,
) -> None:
    # Given a server whose network to Redis goes while another appends more than the feed
    # keeps (REDIS_FEED_MAX_EVENTS)
    async with NetCut(cluster.port) as net:
        a = cluster.make(REDIS_URL=f"redis://127.0.0.1:{net.port}/0", REDIS_FEED_MAX_EVENTS="100")
        other = cluster.make(REDIS_FEED_MAX_EVENTS="100")
        await started(a, other)
        await other.bus.append([delivery(0)], 300)
        await eventually(lambda: len(a.published) == 1, what="the first event on a")
        net.cut()
        await eventually(lambda: not a.bus.healthy, what="a noticing the cut")
        for first in range(1, 1200, 100):
            await other.bus.append([delivery(n) for n in range(first, first + 100)], 300)

        # When its network comes back
        net.restore()

        # Then it notices what it missed, sends its clients away to resume from the history,
        # and goes on with what the feed still has
        await eventually(lambda: a.gaps == 1, what="the gap being noticed")
        await eventually(lambda: a.published[-1][2]["id"] == "id-1200", what="the last event")
        assert len(a.published) < 1201
