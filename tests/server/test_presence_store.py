"""Presence's count keepers against one contract: :class:`LocalPresence` (one server, SQLite)
and :class:`RedisPresence` on a real redis-server, where two stores on one Redis are two
servers. The tests marked "Redis" need two servers, leases or Redis's command counts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.presence.local import LocalPresence
from server.presence.model import ONLINE, Change, Member, Roster, room_scope
from server.presence.redis_store import RedisPresence
from server.presence.store import PresenceStore
from tests.processes import Processes, free_port

#: Short enough for a test, long enough that a sweep made at once comes before its end.
GRACE_S = 0.3
#: A lease that lapses within a test (servers that keep theirs use the default, 15 s).
SHORT_LEASE_S = 0.5
#: Clock resolution: the stores write deadlines in whole milliseconds.
TICK_S = 0.002
ROOM = room_scope("/", "chat")
ALICE_INFO = '{"name":"Alice"}'


@dataclass
class Stores:
    """Makes started stores of one kind ("local" or "redis"); closes them all in teardown. Two
    Redis stores share one Redis (two servers); two local ones share nothing (two relays)."""

    kind: str
    tmp_path: Path
    redis_url: str | None = None
    made: list[PresenceStore] = field(default_factory=list)

    async def make(
        self,
        *,
        grace_s: float = GRACE_S,
        lease_s: float = 15.0,
        events: bool = False,
        outbox_max: int = 1000,
        state_file: Path | None = None,
    ) -> Any:
        store: PresenceStore
        if self.kind == "redis":
            assert self.redis_url is not None
            store = RedisPresence(
                redis_url=self.redis_url,
                prefix="relay",
                grace_s=grace_s,
                lease_s=lease_s,
                events=events,
                outbox_max=outbox_max,
            )
        else:
            store = LocalPresence(
                grace_s=grace_s, events=events, outbox_max=outbox_max, state_file=state_file
            )
        self.made.append(store)
        await store.start()
        return store

    async def close(self) -> None:
        for store in self.made:
            await store.close()


def redis_server(processes: Processes) -> str:
    port = free_port()
    processes.redis(port)
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture(params=["local", "redis"])
async def stores(
    request: pytest.FixtureRequest, processes: Processes, tmp_path: Path
) -> AsyncIterator[Stores]:
    """The contract's subject: each test runs once with each store."""
    url = redis_server(processes) if request.param == "redis" else None
    made = Stores(request.param, tmp_path, url)
    yield made
    await made.close()


@pytest.fixture
async def redis_stores(processes: Processes, tmp_path: Path) -> AsyncIterator[Stores]:
    """Redis stores only: servers sharing one Redis."""
    made = Stores("redis", tmp_path, redis_server(processes))
    yield made
    await made.close()


@pytest.fixture
async def local_stores(tmp_path: Path) -> AsyncIterator[Stores]:
    made = Stores("local", tmp_path)
    yield made
    await made.close()


async def sweep_until_changes(*stores: PresenceStore, timeout_s: float = 10) -> list[Change]:
    """Sweeps with every store at once, again and again, until one returns a change; all the
    changes of that round."""
    deadline = time.monotonic() + timeout_s
    while True:
        rounds = await asyncio.gather(*(store.sweep() for store in stores))
        changes = [change for batch in rounds for change in batch]
        if changes:
            return changes
        if time.monotonic() > deadline:
            raise AssertionError(f"no leave within {timeout_s} s")
        await asyncio.sleep(0.02)  # a polling interval, not a synchronisation


async def poll(call: Callable[[], Awaitable[Any]], *, timeout_s: float = 10) -> tuple[Any, float]:
    """Calls `call` until it returns something truthy; that, and the time just before the call
    that returned it."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = time.time()
        if result := await call():
            return result, before
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing within {timeout_s} s")
        await asyncio.sleep(0.02)  # a polling interval, not a synchronisation


async def members(store: PresenceStore, scope: str = ROOM) -> list[Member] | None:
    roster = await store.roster(scope, after=None, limit=100, max_members=100)
    return roster.members


def bodies(outgoing: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(event.body) for event in outgoing]


# --- 1. joins ------------------------------------------------------------------------------------
async def test_a_first_connection_is_a_join_with_its_info_and_a_second_one_is_no_join(
    stores: Stores,
) -> None:
    store = await stores.make()

    # When alice's first connection is counted, then a second one on the same server
    first = await store.apply([(ROOM, "alice", 1, ALICE_INFO), (ONLINE, "alice", 1, ALICE_INFO)])
    second = await store.apply([(ROOM, "alice", 2, ALICE_INFO), (ONLINE, "alice", 2, ALICE_INFO)])

    # Then the first is a join in each scope, with her info, and the second nothing
    assert first == [
        Change("join", ROOM, "alice", ALICE_INFO),
        Change("join", ONLINE, "alice", ALICE_INFO),
    ]
    assert second == []
    assert await members(store) == [Member("alice", 2, ALICE_INFO)]
    assert await members(store, ONLINE) == [Member("alice", 2, ALICE_INFO)]


async def test_a_connection_on_another_server_is_no_second_join_and_the_roster_sums_servers(
    redis_stores: Stores,
) -> None:
    # Given alice with two connections on server A
    a, b = await redis_stores.make(), await redis_stores.make()
    assert await a.apply([(ROOM, "alice", 2, ALICE_INFO)]) == [
        Change("join", ROOM, "alice", ALICE_INFO)
    ]

    # When a third connects to server B, and bob to B alone
    on_b = await b.apply([(ROOM, "alice", 1, ALICE_INFO), (ROOM, "bob", 1, None)])

    # Then only bob joins, and either server's roster counts alice's connections on both
    assert on_b == [Change("join", ROOM, "bob")]
    expected = [Member("alice", 3, ALICE_INFO), Member("bob", 1, None)]
    assert await members(a) == await members(b) == expected

    # And when A's two go, alice stays with B's one: no change
    assert await a.apply([(ROOM, "alice", 0, None)]) == []
    assert await members(b) == [Member("alice", 1, ALICE_INFO), Member("bob", 1, None)]


# --- 2. leaves after the grace ------------------------------------------------------------------
async def test_a_member_whose_last_connection_goes_leaves_once_and_only_after_the_grace(
    stores: Stores,
) -> None:
    store = await stores.make()
    await store.apply([(ROOM, "alice", 1, ALICE_INFO)])

    # When her last connection goes
    gone = time.time()
    assert await store.apply([(ROOM, "alice", 0, None)]) == []

    # Then a sweep before the grace is over finds nothing: she is a member at 0 connections
    assert await store.sweep() == []
    assert await members(store) == [Member("alice", 0, ALICE_INFO)]

    # And once it is over, a sweep finds her leave, once, not before the grace
    leaves = await sweep_until_changes(store)
    assert time.time() - gone >= GRACE_S - TICK_S
    assert leaves == [Change("leave", ROOM, "alice")]
    assert await store.sweep() == []
    assert await store.roster(ROOM, after=None, limit=100, max_members=100) == Roster(0, [], None)


async def test_a_reconnect_within_the_grace_is_neither_a_leave_nor_a_join(stores: Stores) -> None:
    store = await stores.make()
    await store.apply([(ROOM, "alice", 1, ALICE_INFO), (ROOM, "bob", 1, None)])

    # When alice's connection goes and comes back within the grace, and then bob goes
    assert await store.apply([(ROOM, "alice", 0, None)]) == []
    assert await store.apply([(ROOM, "alice", 1, ALICE_INFO)]) == []
    assert await store.apply([(ROOM, "bob", 0, None)]) == []

    # Then bob's leave, due after alice's grace ended, comes alone: alice never left
    assert await sweep_until_changes(store) == [Change("leave", ROOM, "bob")]
    assert await members(store) == [Member("alice", 1, ALICE_INFO)]


async def test_a_member_gone_from_one_server_and_back_on_another_within_the_grace_stays(
    redis_stores: Stores,
) -> None:
    a, b = await redis_stores.make(), await redis_stores.make()
    await a.apply([(ROOM, "alice", 1, ALICE_INFO), (ROOM, "bob", 1, None)])

    # When alice's connection on A goes, she reconnects to B within the grace, and bob goes
    assert await a.apply([(ROOM, "alice", 0, None)]) == []
    assert await b.apply([(ROOM, "alice", 1, ALICE_INFO)]) == []
    assert await a.apply([(ROOM, "bob", 0, None)]) == []

    # Then, both servers sweeping, bob's later leave comes alone: alice stayed
    assert await sweep_until_changes(a, b) == [Change("leave", ROOM, "bob")]
    assert await members(a) == [Member("alice", 1, ALICE_INFO)]


# --- 3. idempotence ------------------------------------------------------------------------------
async def test_applying_the_same_absolute_counts_twice_changes_nothing(stores: Stores) -> None:
    store = await stores.make()
    counts = [(ROOM, "alice", 2, ALICE_INFO), (ROOM, "bob", 1, None)]
    assert await store.apply(counts) == [
        Change("join", ROOM, "alice", ALICE_INFO),
        Change("join", ROOM, "bob"),
    ]

    # When the same counts are written again (a retry after a timeout)
    again = await store.apply(counts)

    # Then nothing changed: no joins, and the counts are not doubled
    assert again == []
    assert await members(store) == [Member("alice", 2, ALICE_INFO), Member("bob", 1, None)]

    # And a zero written twice is one leave, and once more after it nothing
    assert await store.apply([(ROOM, "alice", 0, None)]) == []
    assert await store.apply([(ROOM, "alice", 0, None)]) == []
    assert await sweep_until_changes(store) == [Change("leave", ROOM, "alice")]
    assert await store.apply([(ROOM, "alice", 0, None)]) == []
    assert await store.sweep() == []
    assert await members(store) == [Member("bob", 1, None)]


# --- 4. leases (Redis) ---------------------------------------------------------------------------
async def test_a_server_whose_lease_lapsed_is_reaped_once_and_its_members_leave_once(
    redis_stores: Stores,
) -> None:
    # Given server A (a short lease) with alice online and in the room, and bob in the room,
    # on server B too (online/offline events on)
    registered = time.time()
    a = await redis_stores.make(lease_s=SHORT_LEASE_S, events=True)
    b = await redis_stores.make(events=True)
    await a.apply([(ONLINE, "alice", 1, None), (ROOM, "alice", 1, None), (ROOM, "bob", 1, None)])
    await b.apply([(ROOM, "bob", 1, None)])
    assert await b.reap() == 0  # A's lease is live

    # When A stops renewing and B reaps it once its lease lapsed
    held, reaped = await poll(b.reap)
    assert time.time() - registered >= SHORT_LEASE_S - TICK_S

    # Then it took A's three counts, and a second reap, with a third server's at the same
    # time, takes nothing
    assert held == 3
    c = await redis_stores.make(events=True)
    assert list(await asyncio.gather(b.reap(), c.reap())) == [0, 0]
    assert await members(b) == [Member("alice", 0, None), Member("bob", 1, None)]

    # And after the grace, with the three sweeping at once, alice leaves, once; bob, also on
    # B, stays
    leaves = await sweep_until_changes(a, b, c)
    assert time.time() - reaped >= GRACE_S - TICK_S
    assert sorted(leaves, key=lambda change: change.scope) == [
        Change("leave", ROOM, "alice"),
        Change("leave", ONLINE, "alice"),
    ]
    assert list(await asyncio.gather(a.sweep(), b.sweep(), c.sweep())) == [[], [], []]
    assert await members(c) == [Member("bob", 1, None)]
    events = bodies(await c.outbox(10))
    assert sorted((e["user"], e["type"]) for e in events) == [
        ("alice", "room_join"),
        ("alice", "room_leave"),
        ("alice", "user_offline"),
        ("alice", "user_online"),
        ("bob", "room_join"),
    ]
    assert sorted((e["user"], e["seq"]) for e in events) == [
        ("alice", 1),
        ("alice", 2),
        ("alice", 3),
        ("alice", 4),
        ("bob", 1),
    ]

    # And A, renewing late, learns that its lease had lapsed
    assert await a.renew() is False
    assert await a.renew() is True


# --- 5. the backend's events ---------------------------------------------------------------------
async def test_the_outbox_holds_each_users_events_numbered_from_1_oldest_first(
    stores: Stores,
) -> None:
    store = await stores.make(events=True)
    start = int(time.time() * 1000)

    # When alice comes online and enters the room, bob comes online, and alice goes
    await store.apply([(ONLINE, "alice", 1, ALICE_INFO)])
    await store.apply([(ROOM, "alice", 1, ALICE_INFO)])
    await store.apply([(ONLINE, "bob", 1, None)])
    gone = int(time.time() * 1000)
    await store.apply([(ROOM, "alice", 0, None), (ONLINE, "alice", 0, None)])
    assert len(await sweep_until_changes(store)) == 2

    # Then the outbox holds, oldest first, each user's events numbered from 1
    events = bodies(await store.outbox(10))
    assert [(e["user"], e["seq"], e["type"]) for e in events[:3]] == [
        ("alice", 1, "user_online"),
        ("alice", 2, "room_join"),
        ("bob", 1, "user_online"),
    ]
    assert {(e["user"], e["seq"]) for e in events[3:]} == {("alice", 3), ("alice", 4)}
    assert {e["type"] for e in events[3:]} == {"room_leave", "user_offline"}
    rooms = [e for e in events if e["type"].startswith("room_")]
    assert [(e["namespace"], e["room"]) for e in rooms] == [("/", "chat"), ("/", "chat")]
    assert [set(e) for e in events] == [
        {"type", "user", "seq", "at"} | ({"namespace", "room"} if e in rooms else set())
        for e in events
    ]
    assert all(isinstance(e["at"], int) for e in events)
    assert start <= events[0]["at"] <= events[1]["at"] <= events[2]["at"] <= gone
    assert all(e["at"] >= gone + GRACE_S * 1000 - 2 for e in events[3:])  # after the grace

    # And outbox(limit) gives the oldest; sent() takes them out
    first_two = await store.outbox(2)
    assert bodies(first_two) == events[:2]
    await store.sent([event.id for event in first_two])
    assert bodies(await store.outbox(10)) == events[2:]
    assert await store.dropped() == 0


async def test_past_the_outbox_max_an_event_is_dropped_counted_and_leaves_a_gap_in_the_seq(
    stores: Stores,
) -> None:
    # Given an outbox of two, full
    store = await stores.make(events=True, outbox_max=2)
    await store.apply([(ONLINE, "alice", 1, None)])
    await store.apply([(ONLINE, "bob", 1, None)])
    assert len(await store.outbox(10)) == 2

    # When bob enters the room
    await store.apply([(ROOM, "bob", 1, None)])

    # Then that event is not kept, and counted
    assert [(e.user, e.seq) for e in await store.outbox(10)] == [("alice", 1), ("bob", 1)]
    assert await store.dropped() == 1

    # And once one was sent, bob's next event is kept with a seq that shows the gap
    [oldest, _] = await store.outbox(10)
    await store.sent([oldest.id])
    await store.apply([(ROOM, "bob", 0, None)])
    assert await sweep_until_changes(store) == [Change("leave", ROOM, "bob")]
    kept = await store.outbox(10)
    assert [(e.user, e.seq) for e in kept] == [("bob", 1), ("bob", 3)]
    assert json.loads(kept[1].body)["type"] == "room_leave"
    assert await store.dropped() == 1


async def test_events_name_a_non_ascii_namespace_and_room_as_they_are(stores: Stores) -> None:
    store = await stores.make(events=True)

    # When alice enters a room whose namespace and name are not ASCII
    await store.apply([(room_scope("/café", "salle-é"), "alice", 1, None)])

    # Then her room_join names them exactly
    [event] = bodies(await store.outbox(10))
    assert (event["type"], event["namespace"], event["room"]) == ("room_join", "/café", "salle-é")


async def test_only_one_of_two_servers_leads_and_the_other_takes_over_once_its_lease_lapsed(
    redis_stores: Stores,
) -> None:
    a = await redis_stores.make(lease_s=SHORT_LEASE_S)
    b = await redis_stores.make(lease_s=SHORT_LEASE_S)

    # When both ask at once, and again
    first = await asyncio.gather(a.lead(), b.lead())
    leader, other = (a, b) if first[0] else (b, a)

    # Then exactly one leads, and keeps leading while it asks
    assert sorted(first) == [False, True]
    last_asked = time.time()
    assert (await leader.lead(), await other.lead()) == (True, False)

    # And when the leader stops asking, the other leads, not before its lease lapsed, and the
    # former leader no longer does
    await poll(other.lead)
    assert time.time() - last_asked >= SHORT_LEASE_S - TICK_S
    assert await leader.lead() is False
    assert await other.lead() is True


# --- 6. a killed local server -------------------------------------------------------------------
async def test_a_killed_local_store_restarted_on_its_file_sends_the_leaves_it_owed(
    local_stores: Stores, tmp_path: Path
) -> None:
    # Given a local store with a state file: alice online and in the room, bob online
    path = tmp_path / "presence.sqlite"
    killed = await local_stores.make(events=True, state_file=path)
    await killed.apply([(ONLINE, "alice", 1, None)])
    await killed.apply([(ROOM, "alice", 1, None)])
    await killed.apply([(ONLINE, "bob", 1, None)])

    # When it is killed (dropped, never closed) and a new one starts on the same file
    restarted = time.time()
    store = await local_stores.make(events=True, state_file=path)

    # Then they are members at 0 connections, within the grace
    assert await members(store, ONLINE) == [Member("alice", 0, None), Member("bob", 0, None)]
    assert await store.sweep() == []

    # And when bob reconnects within the grace, alice alone leaves after it, with her next seqs
    assert await store.apply([(ONLINE, "bob", 1, None)]) == []
    leaves = await sweep_until_changes(store)
    assert time.time() - restarted >= GRACE_S - TICK_S
    assert sorted(leaves, key=lambda c: c.scope) == [
        Change("leave", ROOM, "alice"),
        Change("leave", ONLINE, "alice"),
    ]
    events = bodies(await store.outbox(10))
    assert [(e["user"], e["seq"], e["type"]) for e in events[:3]] == [
        ("alice", 1, "user_online"),
        ("alice", 2, "room_join"),
        ("bob", 1, "user_online"),
    ]
    assert {(e["user"], e["seq"], e["type"]) for e in events[3:]} == {
        ("alice", 3, "room_leave"),
        ("alice", 4, "user_offline"),
    }
    assert await members(store, ONLINE) == [Member("bob", 1, None)]


# --- 7. the roster -------------------------------------------------------------------------------
async def test_the_roster_is_sorted_by_user_paged_after_a_user_and_a_count_alone_when_large(
    stores: Stores,
) -> None:
    store = await stores.make()
    users = ["carol", "alice", "erin", "bob", "dave"]
    await store.apply([(ROOM, user, 1, f'{{"n":"{user}"}}') for user in users])

    async def page(after: str | None, limit: int = 2) -> tuple[list[str], str | None]:
        roster = await store.roster(ROOM, after=after, limit=limit, max_members=5)
        assert roster.count == 5 and roster.members is not None
        assert all(m.info == f'{{"n":"{m.user}"}}' for m in roster.members)
        return [m.user for m in roster.members], roster.next

    # Then pages of two, each after the last one's `next`, list everyone once, sorted
    assert await page(None) == (["alice", "bob"], "bob")
    assert await page("bob") == (["carol", "dave"], "dave")
    assert await page("dave") == (["erin"], None)
    assert await page("carol") == (["dave", "erin"], None)  # exactly the last page: no next
    assert await page(None, limit=5) == (sorted(users), None)

    # And a room above max_members answers with its count alone
    large = await store.roster(ROOM, after=None, limit=2, max_members=4)
    assert large == Roster(5, None, None)


# --- 8. cost (Redis) -----------------------------------------------------------------------------
async def command_calls(redis: aioredis.Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def calls_of(redis: aioredis.Redis, action: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    """Redis commands (scripts' included) that `action` ran, by name."""
    await redis.config_resetstat()
    await action()
    return await command_calls(redis)


async def expect_leave(store: PresenceStore, scope: str) -> None:
    assert await store.sweep() == [Change("leave", scope, "zoe")]


async def test_a_join_and_a_leave_in_a_room_of_10000_run_the_commands_they_run_in_one_of_10(
    redis_stores: Stores,
) -> None:
    # Given a room of 10,000 members and one of 10
    store = await redis_stores.make(grace_s=0)
    big, small = room_scope("/", "big"), room_scope("/", "small")
    await store.apply([(big, f"user-{i:05}", 1, '{"n":1}') for i in range(10_000)])
    await store.apply([(small, f"user-{i:05}", 1, '{"n":1}') for i in range(10)])
    assert (await store.roster(big, after=None, limit=1, max_members=1)).count == 10_000
    assert await store.sweep() == []  # its script loaded, as apply's is
    assert redis_stores.redis_url is not None
    redis = aioredis.Redis.from_url(redis_stores.redis_url)
    try:
        # When a user joins each, and leaves each (a grace of 0: the next sweep takes it)
        join_big = await calls_of(redis, lambda: store.apply([(big, "zoe", 1, '{"n":1}')]))
        join_small = await calls_of(redis, lambda: store.apply([(small, "zoe", 1, '{"n":1}')]))
        gone_big = await calls_of(redis, lambda: store.apply([(big, "zoe", 0, None)]))
        leave_big = await calls_of(redis, lambda: expect_leave(store, big))
        gone_small = await calls_of(redis, lambda: store.apply([(small, "zoe", 0, None)]))
        leave_small = await calls_of(redis, lambda: expect_leave(store, small))
    finally:
        await redis.aclose()

    # Then each ran the same commands, as many of each, in both rooms
    assert join_big["evalsha"] == 1 and join_big["hset"] >= 2  # scripts' commands are counted
    assert join_big == join_small
    assert gone_big == gone_small
    assert leave_big["hdel"] >= 2
    assert leave_big == leave_small
    print(f"join {join_big}\ngone {gone_big}\nleave {leave_big}")
    assert (await store.roster(big, after=None, limit=1, max_members=1)).count == 10_000
