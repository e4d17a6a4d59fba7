"""The Python client helper resumes the streams the server subscribed it to (the user's stream
``relay:user:<sub>``, the rooms of the token's subscribe claim) after every reconnect, with no
app code: it presents their positions in the connect ``auth`` (``streams``) and reports each
one's ``relay:recovery`` answer by room, as it does for a joined room's join answer.

Unit tests fake python-socketio's client (the Socket.IO boundary); the integration test runs
the relay's real processes and cuts the network for real (devtools/netcut.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import socketio
from sqs_relay_client import Event, Recovery, RelayClient

from devtools.netcut import NetCut
from tests.integration.helpers import eventually, send
from tests.processes import Processes, Stack
from tests.tokens import token

ALICE = "relay:user:alice"
RECOVERY = "relay:recovery"

Packets = list[tuple[str, Any]]


class FakeServerSocket:
    """python-socketio's `AsyncClient` as RelayClient uses it, talking to a scripted server:
    each connect hands the handlers the events the test queued for it (the replay and the
    ``relay:recovery`` answers, which the real server sends before the connect completes),
    then connects; a join is answered with the room's position."""

    reason = socketio.AsyncClient.reason

    def __init__(self, **_options: Any) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.connected = False
        self.auths: list[dict[str, Any]] = []
        self.calls: list[tuple[str, Any]] = []
        self.on_connect: list[Packets] = []  # what each next connect gets, in order

    def on(self, event: str, handler: Callable[..., Any], namespace: str = "/") -> None:
        self.handlers[event] = handler

    async def connect(self, _url: str, *, auth: Callable[[], Awaitable[Any]], **_kw: Any) -> None:
        self.auths.append(await auth())  # python-socketio calls it before every connect
        for event, payload in self.on_connect.pop(0) if self.on_connect else []:
            self.handlers["*"](event, payload)
        self.connected = True
        await self.handlers["connect"]()

    async def call(self, event: str, data: Any, **_kw: Any) -> Any:
        self.calls.append((event, data))
        room = data["room"] if isinstance(data, dict) else data
        return {"ok": True, "room": room, "epoch": "e1", "offset": 0}

    async def disconnect(self) -> None:
        self.connected = False
        await self.handlers["disconnect"](self.reason.CLIENT_DISCONNECT)

    async def drop_and_reconnect(self) -> None:
        """A transport close: python-socketio reconnects by itself with the same auth."""
        self.connected = False
        await self.handlers["disconnect"](self.reason.TRANSPORT_ERROR)
        await self.connect("", auth=self.auths_source)

    auths_source: Callable[[], Awaitable[Any]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeServerSocket]:
    made: list[FakeServerSocket] = []

    def factory(**options: Any) -> FakeServerSocket:
        made.append(FakeServerSocket(**options))
        return made[-1]

    monkeypatch.setattr(socketio, "AsyncClient", factory)
    return made


def faked(fake: list[FakeServerSocket], **options: Any) -> tuple[RelayClient, FakeServerSocket]:
    client = RelayClient("http://relay.invalid", token="jwt", **options)
    (sio,) = fake
    sio.auths_source = client._auth
    return client, sio


def answer(room: str | None, offset: int, **result: Any) -> tuple[str, Any]:
    return RECOVERY, {"room": room, "epoch": "e1", "offset": offset, **result}


def event(room: str | None, offset: int, data: Any) -> tuple[str, Any]:
    return "e", {"id": f"{room}-{offset}", "data": data, "room": room, "epoch": "e1",
                 "offset": offset}  # fmt: skip


async def taken(client: RelayClient) -> list[tuple[str | None, Any]]:
    got = []
    while not client._events.empty():
        item = client._events.get_nowait()
        assert item is not None
        got.append((item.room, item.data))
    return got


async def test_a_reconnect_presents_each_server_subscribed_room_s_position_in_auth_streams(
    fake: list[FakeServerSocket],
) -> None:
    # Given a client whose first connect is answered for alice's stream and the claim's news
    recoveries: list[Recovery] = []
    client, sio = faked(fake, on_recovery=recoveries.append)
    sio.on_connect.append([answer(ALICE, 2), answer("news", 0), answer(None, 5)])
    await client.connect()
    assert sio.auths == [{"token": "jwt", "since": None, "streams": {}}]
    assert client.subscribed == [ALICE, "news"]
    # and that then got one event on alice's stream
    sio.handlers["*"](*event(ALICE, 3, "hi"))

    # When its transport drops and python-socketio connects again
    sio.on_connect.append([answer(ALICE, 3, recovered=True, replayed=0),
                           answer("news", 0, recovered=True, replayed=0),
                           answer(None, 5, recovered=True, replayed=0)])  # fmt: skip
    await sio.drop_and_reconnect()

    # Then the auth presents the room-less position as `since` and both rooms' in `streams`
    assert sio.auths[1] == {
        "token": "jwt",
        "since": {"epoch": "e1", "offset": 5},
        "streams": {ALICE: {"epoch": "e1", "offset": 3}, "news": {"epoch": "e1", "offset": 0}},
    }
    # and no join was sent for them: the server resumes them at the connect
    assert sio.calls == []
    assert await taken(client) == [(ALICE, "hi")]
    assert [r.room for r in recoveries] == [ALICE, "news", None]


async def test_server_subscribed_resumes_are_reported_by_room_and_replays_delivered_once(
    fake: list[FakeServerSocket],
) -> None:
    # Given a client in room shop whose server subscribed it to alice's stream and news
    recoveries: list[Recovery] = []
    client, sio = faked(fake, rooms=["shop"], on_recovery=recoveries.append)
    sio.on_connect.append([answer(ALICE, 1), answer("news", 4), answer(None, 0)])
    await client.connect()
    assert recoveries == []  # first answers carry positions only: nothing was resumed

    # When it reconnects: alice's stream replays offsets 2 and 3, news could not be
    # recovered, the room-less stream is; then offset 3 comes again live
    sio.on_connect.append([
        event(ALICE, 2, "a2"), event(ALICE, 3, "a3"), answer(ALICE, 3, recovered=True, replayed=2),
        answer("news", 9, recovered=False, replayed=0, reason="out of the replay window"),
        answer(None, 0, recovered=True, replayed=0),
    ])  # fmt: skip
    await sio.drop_and_reconnect()
    sio.handlers["*"](*event(ALICE, 3, "a3"))  # the same event live again: a repeat

    # Then each resume is reported with its room, in the server's order
    assert recoveries == [
        Recovery(ALICE, True, 2),
        Recovery("news", False, 0, "out of the replay window"),
        Recovery(None, True, 0),
    ]
    # and the replayed events reached the app once each, the joined room still by a join
    assert await taken(client) == [(ALICE, "a2"), (ALICE, "a3")]
    assert client.streams.since("news") == {"epoch": "e1", "offset": 9}
    await eventually(lambda: len(sio.calls) == 2, what="the join of shop again")
    assert [request["room"] for _, request in sio.calls] == ["shop", "shop"]
    assert "shop" not in sio.auths[1]["streams"]


async def test_a_room_the_token_no_longer_lists_is_not_presented_again(
    fake: list[FakeServerSocket],
) -> None:
    # Given a client subscribed to alice's stream and news by its first token
    client, sio = faked(fake)
    sio.on_connect.append([answer(ALICE, 1), answer("news", 1), answer(None, 0)])
    await client.connect()
    # When a reconnect's answers name alice's stream only (the new token lists no news)
    sio.on_connect.append([answer(ALICE, 1, recovered=True, replayed=0),
                           answer(None, 0, recovered=True, replayed=0)])  # fmt: skip
    await sio.drop_and_reconnect()
    assert set(sio.auths[1]["streams"]) == {ALICE, "news"}
    # Then the next connect presents alice's stream only
    await sio.drop_and_reconnect()
    assert set(sio.auths[2]["streams"]) == {ALICE}
    assert client.subscribed == [ALICE]


async def test_events_of_a_room_it_did_not_join_are_resumed_at_connect_until_it_leaves(
    fake: list[FakeServerSocket],
) -> None:
    # Given a client in room shop that gets events of shop and of a room it never joined
    client, sio = faked(fake, rooms=["shop"])
    await client.connect()
    sio.handlers["*"](*event("shop", 1, "s"))
    sio.handlers["*"](*event("alerts", 7, "x"))
    # When it reconnects
    await sio.drop_and_reconnect()
    # Then the other room's position goes in `streams` (the joined one is resumed by join)
    assert sio.auths[1]["streams"] == {"alerts": {"epoch": "e1", "offset": 7}}
    assert client.subscribed == ["alerts"]
    # and once it left that room it is presented no more
    await client.leave("alerts")
    await sio.drop_and_reconnect()
    assert sio.auths[2]["streams"] == {}


# --- against the real relay ----------------------------------------------------------------------
async def take(relay: RelayClient, count: int, timeout_s: float = 30) -> list[Event]:
    return [await asyncio.wait_for(anext(relay), timeout_s) for _ in range(count)]


async def test_a_cut_client_gets_its_user_stream_and_claim_rooms_replayed_with_no_app_code(
    processes: Processes, stack: Stack
) -> None:
    # Given alice's client, whose token subscribes it to news, in room shop, received nothing
    processes.relay(stack)
    sqs = stack.sqs_client()
    recoveries: list[Recovery] = []
    async with (
        NetCut(stack.http_port) as net,
        RelayClient(
            net.url,
            token=lambda: token(sub="alice", subscribe=["news"]),
            rooms=["shop"],
            transports=["websocket"],
            on_recovery=recoveries.append,
            reconnection_delay=0.1,
            reconnection_delay_max=0.5,
        ) as client,
    ):
        await eventually(lambda: client.subscribed == [ALICE, "news"], what="the subscriptions")
        assert recoveries == []

        # When the network goes while events go to alice (2), bob, news and shop
        net.cut()
        bodies: list[dict[str, Any]] = [{"event": "e", "data": n, "user": "alice"} for n in (1, 2)]
        bodies += [{"event": "e", "data": "b", "user": "bob"}]
        bodies += [{"event": "e", "data": "n", "room": "news"}]
        bodies += [{"event": "e", "data": "s", "room": "shop"}]
        send(sqs, stack.queue_url, bodies)
        await stack.wait_counter("emitted", len(bodies))
        net.restore()

        # Then what alice's streams missed arrives once each, nothing of bob's
        got = await take(client, 4)
        assert sorted((e.room, e.data) for e in got) == sorted(
            [(ALICE, 1), (ALICE, 2), ("news", "n"), ("shop", "s")]
        )
        assert [e.data for e in got if e.room == ALICE] == [1, 2]
        # and each stream's resume is reported by its room: the connect's in the server's
        # order (user stream, claim, room-less last), the joined room's after its join
        await eventually(lambda: len(recoveries) == 4, what="four recovery reports")
        assert recoveries[:3] == [
            Recovery(ALICE, True, 2),
            Recovery("news", True, 1),
            Recovery(None, True, 0),
        ]
        assert recoveries[3] == Recovery("shop", True, 1)
        # and live events on alice's stream follow, with nothing repeated in between
        send(sqs, stack.queue_url, [{"event": "e", "data": "live", "user": "alice"}])
        [live] = await take(client, 1)
        assert (live.room, live.data, live.offset) == (ALICE, "live", 3)
