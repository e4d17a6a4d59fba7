"""Presence in rooms through the whole path: members of a presence room (PRESENCE_ROOMS) are
told who joins and who leaves (relay:presence), any client allowed in the room may ask who is
there, a quick reconnect is neither a leave nor a join, and a burst of joins is a few notices.
One server, then cluster mode: two servers on one Redis, one of them killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.clients import RecordingClient
from tests.integration.helpers import eventually
from tests.processes import Process, Processes, Stack, free_port, healthz
from tests.tokens import token

pytestmark = pytest.mark.timeout(120)

ROOM = "chat:1"
#: Fast enough for tests: a second of grace, notices gathered for a tenth of one.
PRESENCE = {"PRESENCE_ROOMS": "chat:*", "PRESENCE_GRACE_S": "1", "PRESENCE_COALESCE_S": "0.1"}


_OPEN: list[RecordingClient] = []


@pytest.fixture(autouse=True)
async def _disconnect_clients() -> AsyncIterator[None]:
    """Every client a test opened is closed at its end (a dead server's too)."""
    yield
    while _OPEN:
        await _OPEN.pop().sio.disconnect()


async def member(url: str, sub: str, *, join: bool = True, **claims: Any) -> RecordingClient:
    """User `sub` connected to `url`, allowed in chat rooms, and joined to ROOM."""
    client = RecordingClient()
    _OPEN.append(client)
    await client.sio.connect(
        url, auth={"token": token(["chat:*"], sub=sub, **claims)}, wait_timeout=10
    )
    if join:
        answer = await client.sio.call("join", {"room": ROOM}, timeout=10)
        assert answer["ok"], answer
    return client


def notices(client: RecordingClient) -> list[dict[str, Any]]:
    return list(client.of("relay:presence"))


def joined(client: RecordingClient) -> list[str]:
    """Every user the client was told joined ROOM, in order."""
    return [j["user"] for n in notices(client) for j in n["joined"] if n["room"] == ROOM]


def left(client: RecordingClient) -> list[str]:
    return [user for n in notices(client) for user in n["left"] if n["room"] == ROOM]


async def ask(client: RecordingClient, room: str = ROOM, **request: Any) -> dict[str, Any]:
    answer: dict[str, Any] = await client.sio.call(
        "presence", {"room": room, **request}, timeout=10
    )
    return answer


async def test_members_are_told_who_joins_and_leaves_and_may_ask_who_is_there(
    processes: Processes, stack: Stack
) -> None:
    # Given one server with presence in chat rooms, alice (with public info) in ROOM
    processes.server(stack, **PRESENCE)
    alice = await member(stack.base_url, "alice", info={"name": "Alice"})
    await eventually(lambda: joined(alice) == ["alice"], what="alice's own join")

    # When bob joins on two connections, then leaves on both
    bob = await member(stack.base_url, "bob")
    bob_phone = await member(stack.base_url, "bob")
    await eventually(lambda: joined(alice) == ["alice", "bob"], what="bob's join")
    roster = await ask(bob)
    await bob.sio.disconnect()
    await bob_phone.sio.disconnect()
    await eventually(lambda: left(alice) == ["bob"], what="bob's leave", timeout_s=10)

    # Then alice was told of bob once each way (two connections are one member); bob's
    # question listed both, with alice's info and bob's two connections; afterwards alice alone
    assert joined(alice) == ["alice", "bob"]
    assert roster == {
        "ok": True,
        "room": ROOM,
        "count": 2,
        "members": [
            {"user": "alice", "connections": 1, "info": {"name": "Alice"}},
            {"user": "bob", "connections": 2, "info": None},
        ],
        "next": None,
    }
    assert (await ask(alice))["members"] == [
        {"user": "alice", "connections": 1, "info": {"name": "Alice"}}
    ]


async def test_presence_is_refused_outside_presence_rooms_and_to_clients_not_allowed_in(
    processes: Processes, stack: Stack
) -> None:
    # Given presence in chat rooms, and a client whose token allows news rooms only
    processes.server(stack, **PRESENCE)
    alice = await member(stack.base_url, "alice")
    outsider = RecordingClient()
    _OPEN.append(outsider)
    await outsider.sio.connect(
        stack.base_url, auth={"token": token(["news:*"], sub="eve")}, wait_timeout=10
    )

    # When each asks about a room it may not, or one without presence
    not_allowed = await ask(outsider)
    no_presence = await ask(alice, room="news:1")
    bad_after = await ask(alice, after=7)

    # Then each is refused with the reason
    assert not_allowed == {"ok": False, "error": f"not allowed in room {ROOM!r}"}
    assert no_presence == {"ok": False, "error": "room 'news:1' has no presence (PRESENCE_ROOMS)"}
    assert bad_after["ok"] is False and "after" in bad_after["error"]


async def test_a_reconnect_within_the_grace_is_neither_a_leave_nor_a_join(
    processes: Processes, stack: Stack
) -> None:
    # Given alice and bob in ROOM, with a grace of 2 s
    processes.server(stack, **(PRESENCE | {"PRESENCE_GRACE_S": "2"}))
    alice = await member(stack.base_url, "alice")
    await eventually(lambda: joined(alice) == ["alice"], what="alice's own join")
    bob = await member(stack.base_url, "bob")
    await eventually(lambda: joined(alice) == ["alice", "bob"], what="bob's join")

    # When bob's connection drops and he reconnects at once, three times; then carol joins
    for _ in range(3):
        await bob.sio.disconnect()
        bob = await member(stack.base_url, "bob")
    carol = await member(stack.base_url, "carol")
    await eventually(lambda: "carol" in joined(alice), what="carol's join")

    # Then alice heard of carol, and never that bob left or joined again
    assert joined(alice) == ["alice", "bob", "carol"]
    assert left(alice) == []
    assert (await ask(carol))["count"] == 3


async def test_a_burst_of_joins_reaches_members_as_a_few_notices_and_a_big_room_as_a_count(
    processes: Processes, stack: Stack
) -> None:
    # Given alice in ROOM, notices gathered for half a second, lists of at most 10 members
    settings = PRESENCE | {"PRESENCE_COALESCE_S": "0.5", "PRESENCE_MAX_MEMBERS": "10"}
    processes.server(stack, **settings, PRESENCE_PAGE_SIZE="4")
    alice = await member(stack.base_url, "alice")
    await eventually(lambda: joined(alice) == ["alice"], what="alice's own join")

    # When 20 users join at once
    others = await asyncio.gather(*(member(stack.base_url, f"user{n:02}") for n in range(20)))
    await eventually(lambda: len(joined(alice)) == 21, what="every join")

    # Then alice learnt of each once, in far fewer notices than joins; the room, over
    # PRESENCE_MAX_MEMBERS, answers with its count alone
    assert sorted(joined(alice)[1:]) == [f"user{n:02}" for n in range(20)]
    assert len(notices(alice)) < 10, len(notices(alice))
    assert await ask(others[0]) == {"ok": True, "room": ROOM, "count": 21}


async def test_members_are_listed_a_page_at_a_time(processes: Processes, stack: Stack) -> None:
    # Given five members, pages of two
    processes.server(stack, **PRESENCE, PRESENCE_PAGE_SIZE="2")
    clients = [await member(stack.base_url, f"user{n}") for n in range(5)]

    # When one asks page after page
    pages, after = [], None
    while True:
        answer = await ask(clients[0], after=after)
        pages.append([m["user"] for m in answer["members"]])
        after = answer["next"]
        if after is None:
            break

    # Then the pages list every member once, in order
    assert pages == [["user0", "user1"], ["user2", "user3"], ["user4"]]


# --- cluster mode -----------------------------------------------------------------------------
@pytest.fixture
def two_servers(processes: Processes, stack: Stack) -> Iterator[dict[int, Process]]:
    """Two servers in cluster mode on one Redis (clients connect to each directly), leases of
    2 s."""
    redis_port = free_port()
    processes.redis(redis_port)
    servers: dict[int, Process] = {}
    for n in (1, 2):
        http_port = free_port()
        env = stack.env(
            PORT=str(http_port),
            ZMQ_BIND=f"tcp://127.0.0.1:{free_port()}",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            PRESENCE_LEASE_S="2",
            **PRESENCE,
        )
        server = processes.start(f"server{n}", ["-m", "server"], env)
        server.wait_ready(
            lambda port=http_port: healthz(f"http://127.0.0.1:{port}")["redis"],
            what=f"server{n}'s Redis",
        )
        servers[http_port] = server
    yield servers


async def test_across_servers_members_see_each_other_and_a_killed_servers_members_leave(
    two_servers: dict[int, Process],
) -> None:
    # Given alice on one server and bob on the other, in ROOM
    (port_a, _), (port_b, server_b) = two_servers.items()
    alice = await member(f"http://127.0.0.1:{port_a}", "alice")
    bob = await member(f"http://127.0.0.1:{port_b}", "bob")
    await eventually(lambda: sorted(joined(alice)) == ["alice", "bob"], what="bob's join")
    # (bob, who came second, learns of alice from the roster: notices go to who is there)
    both = await ask(alice), await ask(bob)

    # When bob's server is killed (no clean stop: nothing tells Redis)
    server_b.kill_group()

    # Then each server listed both members; alice, on the other server, is told bob left once
    # his server's lease (2 s) and the grace (1 s) are over, and the room is hers alone
    for answer in both:
        assert [m["user"] for m in answer["members"]] == ["alice", "bob"]
    await eventually(lambda: left(alice) == ["bob"], what="bob's leave", timeout_s=15)
    assert (await ask(alice))["members"] == [{"user": "alice", "connections": 1, "info": None}]
    carol = await member(f"http://127.0.0.1:{port_a}", "carol")
    await eventually(lambda: "carol" in joined(alice), what="carol's join, after")
    assert left(alice) == ["bob"] and left(carol) == []


async def test_a_presence_request_on_a_server_without_presence_rooms_is_refused(
    processes: Processes, stack: Stack
) -> None:
    # Given a server without PRESENCE_ROOMS
    processes.server(stack)
    client = await member(stack.base_url, "alice")
    # When a client asks; Then it is told the room has no presence
    assert await ask(client) == {
        "ok": False,
        "error": f"room {ROOM!r} has no presence (PRESENCE_ROOMS)",
    }
