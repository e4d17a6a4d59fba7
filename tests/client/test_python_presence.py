"""The Python client helper's presence: ``on_presence`` gets each ``relay:presence`` notice
(who joined and who left a presence room it is in), never iterated as an event;
``presence(room)`` asks who is there, one page; ``members(room)`` goes through every page,
bounded by the server's count.

Unit tests fake python-socketio's client (the Socket.IO boundary) to serve pages that never
end; the integration tests run the relay's real processes with presence in ``chat:*`` rooms
and pages of 2 members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqs_relay_client import PresenceError, RelayClient

from tests.integration.helpers import eventually, send_async
from tests.processes import Processes, Stack
from tests.tokens import token

pytestmark = pytest.mark.timeout(60)

ROOM = "chat:1"
#: Presence in chat rooms; fast enough for tests: notices gathered for a tenth of a second, a
#: leave after a third of one, 2 members a page.
PRESENCE = {
    "PRESENCE_ROOMS": "chat:*",
    "PRESENCE_GRACE_S": "0.3",
    "PRESENCE_COALESCE_S": "0.1",
    "PRESENCE_PAGE_SIZE": "2",
}

Notices = list[dict[str, Any]]


def joined(notices: Notices) -> list[str]:
    """Every user these notices said joined ROOM, in order."""
    return [j["user"] for n in notices if n["room"] == ROOM for j in n["joined"]]


def left(notices: Notices) -> list[str]:
    return [user for n in notices if n["room"] == ROOM for user in n["left"]]


# --- members(), against a server that pages wrongly --------------------------------------------
class EndlessPages:
    """python-socketio's `AsyncClient` as RelayClient's presence requests use it: a connected
    client whose server answers every presence request with the same page, the same ``next``
    (or a fresh one each time) and a count of `count`."""

    def __init__(self, *, count: int, fresh_next: bool) -> None:
        self.connected = True
        self.count = count
        self.fresh_next = fresh_next
        self.requests: list[Any] = []

    async def call(self, event: str, data: Any, **_kw: Any) -> dict[str, Any]:
        assert event == "presence"
        self.requests.append(data)
        n = len(self.requests)
        return {
            "ok": True,
            "room": data["room"],
            "count": self.count,
            "members": [{"user": f"u{n}", "connections": 1, "info": None}],
            "next": f"u{n}" if self.fresh_next else "u1",
        }


def helper_over(sio: EndlessPages) -> RelayClient:
    relay = RelayClient("http://127.0.0.1:1")
    relay.sio = sio  # type: ignore[assignment]
    relay._namespace_connected = True
    return relay


async def test_members_stops_when_the_server_answers_the_same_next_again() -> None:
    # Given a server that answers every page with next "u1" and a count it never reaches
    sio = EndlessPages(count=1000, fresh_next=False)
    # When the helper lists the members
    members = await helper_over(sio).members(ROOM)
    # Then it asked for the first page and for "u1" once, and stopped there
    assert [r["after"] for r in sio.requests] == [None, "u1"]
    assert [m["user"] for m in members] == ["u1", "u2"]


async def test_members_stops_at_the_server_s_count_when_next_never_ends() -> None:
    # Given a server that always gives a new next, for a room of 3 members
    sio = EndlessPages(count=3, fresh_next=True)
    # When the helper lists the members, Then it stops after 3, on the third page
    members = await helper_over(sio).members(ROOM)
    assert len(sio.requests) == 3
    assert [m["user"] for m in members] == ["u1", "u2", "u3"]


async def test_presence_while_disconnected_answers_not_connected_without_asking() -> None:
    relay = RelayClient("http://127.0.0.1:1")
    assert not relay.connected
    assert await relay.presence(ROOM) == {"ok": False, "room": ROOM, "error": "not connected"}


# --- against the real relay --------------------------------------------------------------------
@pytest.fixture
async def clients() -> AsyncIterator[list[RelayClient]]:
    """The helpers a test opened, closed at its end."""
    opened: list[RelayClient] = []
    yield opened
    for client in opened:
        await client.close()


async def member(
    url: str, user: str, clients: list[RelayClient], notices: Notices | None = None
) -> RelayClient:
    """A helper as `user` (info: their name) connected to `url` and joined to ROOM; its
    presence notices go to `notices`."""
    client = RelayClient(
        url,
        token=token(sub=user, info={"name": user.title()}),
        on_presence=notices.append if notices is not None else None,
    )
    clients.append(await client.connect())
    answer = await client.join(ROOM)
    assert answer is not None and answer["ok"], answer
    return client


async def test_python_helper_members_page_through_every_member_and_presence_refuses_a_room_without(
    processes: Processes, stack: Stack, clients: list[RelayClient]
) -> None:
    # Given a server with presence in chat rooms, 2 members a page, and alice, bob and carol
    # (with public info) in ROOM
    processes.server(stack, **PRESENCE)
    alice = await member(stack.base_url, "alice", clients)
    for user in ("carol", "bob"):
        await member(stack.base_url, user, clients)

    # When alice asks for the first page, Then it holds 2 of the 3, with a next page
    first = await alice.presence(ROOM)
    assert first["ok"] and first["count"] == 3, first
    assert [m["user"] for m in first["members"]] == ["alice", "bob"]
    assert first["next"] is not None

    # When she lists the members, Then all 3 come, over the pages, with their info
    assert await alice.members(ROOM) == [
        {"user": user, "connections": 1, "info": {"name": user.title()}}
        for user in ("alice", "bob", "carol")
    ]

    # When she asks about a room without presence, Then the server's refusal comes back
    refused = await alice.presence("news")
    assert refused["ok"] is False and "has no presence" in refused["error"], refused
    with pytest.raises(PresenceError) as raised:
        await alice.members("news")
    assert raised.value.answer == refused


async def test_python_helper_tells_on_presence_of_each_other_s_join_and_never_iterates_a_notice(
    processes: Processes, stack: Stack, clients: list[RelayClient]
) -> None:
    # Given the relay with presence in chat rooms, and alice in ROOM
    stack.extra.update(PRESENCE)
    processes.relay(stack)
    notices: dict[str, Notices] = {"alice": [], "bob": []}
    alice = await member(stack.base_url, "alice", clients, notices["alice"])
    await eventually(lambda: joined(notices["alice"]) == ["alice"], what="alice's own join")

    # When bob joins, Then alice is told, with his info
    await member(stack.base_url, "bob", clients, notices["bob"])
    await eventually(lambda: joined(notices["alice"]) == ["alice", "bob"], what="bob's join")
    assert {"user": "bob", "info": {"name": "Bob"}} in notices["alice"][-1]["joined"]

    # When alice leaves (past the grace) and joins again, Then bob is told both
    await alice.leave(ROOM)
    await eventually(lambda: left(notices["bob"]) == ["alice"], what="alice's leave")
    await alice.join(ROOM)
    await eventually(lambda: joined(notices["bob"]) == ["bob", "alice"], what="alice's join")
    assert {"user": "alice", "info": {"name": "Alice"}} in notices["bob"][-1]["joined"]

    # When an event is sent to the room after all those notices
    await send_async(
        stack.sqs_client(), stack.queue_url, [{"event": "e", "data": "after", "room": ROOM}]
    )

    # Then it is the first (and only) event either client iterates: no notice came as one
    for client in clients:
        event = await anext(aiter(client))
        assert (event.name, event.room, event.data) == ("e", ROOM, "after")
    assert all(n["room"] == ROOM for n in notices["alice"] + notices["bob"])
