"""The client handlers against python-socketio's real server and manager, with a stand-in
for engine.io's socket so that a test decides when a client's transport goes away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio
from engineio.async_socket import AsyncSocket

from server.adapters.engineio_server import BoundedEngineIO
from server.adapters.transport import HeartbeatSocket
from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.payload import BROADCAST_ROOM, ClientJSON
from server.sessions.auth import Authenticator, Identity
from server.sessions.connection import ClientOwner, Connection, Connections, TokenBucket
from server.sessions.handlers import SessionNamespace
from shared import counters as c
from shared.counters import Counters
from shared.settings import load_settings


class Transport:
    """engine.io's socket as far as the server uses it; `close_after` sends, it is gone."""

    def __init__(self, close_after: int | None = None) -> None:
        self.sent: list[Any] = []
        self.closed = False
        self._close_after = close_after

    async def send(self, packet: Any) -> None:
        self.sent.append(packet)
        if self._close_after is not None and len(self.sent) >= self._close_after:
            self.closed = True


class Relay:
    def __init__(self, **settings: str) -> None:
        self.settings = load_settings({"AUTH": "none", **settings})
        self.sio = socketio.AsyncServer(async_mode="asgi", namespaces="*", json=ClientJSON)
        self.replay = ReplayBuffer(window_s=60, max_events=1000, max_bytes=64 << 20)
        self.counters = Counters()
        self.handlers = SessionNamespace(
            settings=self.settings,
            auth=Authenticator.from_settings(self.settings),
            history=LocalHistory(self.replay, counters=self.counters),
            counters=self.counters,
        )
        self.sio.register_namespace(self.handlers)

    def history(self, room: str | None, count: int, size: int = 100) -> None:
        for _ in range(count):
            stream = ("/", room)
            offset = self.replay.next_offset(stream)
            self.replay.append(stream, offset, "e", {"offset": offset, "x": "y" * size}, size)

    async def connect(
        self, eio_sid: str, transport: Transport, auth: Any = None
    ) -> tuple[str, Any]:
        """python-socketio's own connect sequence, with the handler in the middle."""
        self.sio.eio.sockets[eio_sid] = transport
        sid = await self.sio.manager.pre_connect(eio_sid, "/")
        result = await self.handlers.trigger_event("connect", "/", sid, {}, auth or {})
        if result is not False:
            await self.sio.manager.connect(sid, "/")
        else:
            await self.sio.manager.disconnect(sid, "/")
        return sid, result

    def rooms(self, sid: str) -> list[str]:
        return self.sio.manager.get_rooms(sid, "/")


async def settled() -> None:
    """Let the emit tasks python-socketio started finish (it sends each packet in a task)."""
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))


async def test_a_transport_gone_while_connecting_leaves_no_ghost() -> None:
    # Given 50 events to replay, and a client whose transport goes after the 5th packet
    relay = Relay()
    relay.history(None, 50)
    since = {"epoch": relay.replay.epoch, "offset": 0}
    # When it connects with a resume from the start
    sid, result = await relay.connect("eio1", Transport(close_after=5), {"since": since})
    # Then the connect is refused, nothing of it is kept, and it never entered relay:all
    assert result is False
    assert len(relay.handlers.connections) == 0
    assert BROADCAST_ROOM not in relay.rooms(sid)


class Watched(Transport):
    """A transport that notes, as each packet is sent, whether a client is in relay:all yet
    (the one client of the test: the room exists once someone entered it)."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self.in_broadcast_room: list[bool] = []
        self._rooms = relay.sio.manager.rooms

    async def send(self, packet: Any) -> None:
        self.in_broadcast_room.append(bool(self._rooms.get("/", {}).get(BROADCAST_ROOM)))
        await super().send(packet)


async def test_a_connect_with_a_resume_replays_in_order_then_enters_then_answers() -> None:
    # Given 3 events without a room, and a client that had the first
    relay = Relay()
    relay.history(None, 3)
    transport = Watched(relay)
    epoch = relay.replay.epoch

    # When it connects with a resume from offset 1
    sid, result = await relay.connect("eio1", transport, {"since": {"epoch": epoch, "offset": 1}})
    await settled()

    # Then before anything else it is sent the two it missed, in order, while it is not yet in
    # relay:all (so no live event can come between them), then, in the room, the connect answer
    sent = [socketio.packet.Packet(encoded_packet=p.data).data for p in transport.sent]
    assert [(event, payload.get("offset")) for event, payload in sent] == [
        ("e", 2),
        ("e", 3),
        ("relay:recovery", 3),
    ]
    assert transport.in_broadcast_room == [False, False, True]
    assert sent[-1][1] == {
        "room": None, "epoch": epoch, "offset": 3, "recovered": True, "replayed": 2,
    }  # fmt: skip
    assert result is None
    assert BROADCAST_ROOM in relay.rooms(sid)
    assert relay.counters.get(c.REPLAYED) == 2


async def test_join_and_leave_of_one_connection_run_in_order() -> None:
    # Given a room with history, a connected client
    relay = Relay()
    relay.history("shop", 200)
    sid, _ = await relay.connect("eio1", Transport())
    since = {"epoch": relay.replay.epoch, "offset": 0}
    answered: list[str] = []

    async def call(event: str, request: Any) -> Any:
        answer = await relay.handlers.trigger_event(event, "/", sid, request)
        answered.append(event)
        return answer

    # When a join with a replay and a leave arrive together
    join, leave = await asyncio.gather(
        call("join", {"room": "shop", "since": since}), call("leave", "shop")
    )
    # Then the join is answered first and the leave wins: the client is not in the room
    assert answered == ["join", "leave"]
    assert join["ok"] and join["replayed"] == 200 and leave["ok"]
    assert "shop" not in relay.rooms(sid)


async def test_one_resume_replays_at_most_resume_max_bytes() -> None:
    relay = Relay(RESUME_MAX_BYTES="5000", CLIENT_EVENT_BURST="100")
    relay.history("shop", 100, size=100)
    sid, _ = await relay.connect("eio1", Transport())
    epoch = relay.replay.epoch
    big = await relay.handlers.trigger_event(
        "join", "/", sid, {"room": "shop", "since": {"epoch": epoch, "offset": 0}}
    )
    small = await relay.handlers.trigger_event(
        "join", "/", sid, {"room": "shop", "since": {"epoch": epoch, "offset": 90}}
    )
    assert big["ok"] and big["recovered"] is False and "RESUME_MAX_BYTES" in big["reason"]
    position = {"epoch": epoch, "offset": 100}
    assert small == {"ok": True, "room": "shop", "recovered": True, "replayed": 10} | position
    assert relay.counters.get(c.RESUME_REFUSED) == 1


async def test_one_connection_is_replayed_at_most_its_budget_in_all() -> None:
    relay = Relay(RESUME_MAX_BYTES_PER_CONNECTION="3500", CLIENT_EVENT_BURST="100")
    relay.history("shop", 100, size=100)
    sid, _ = await relay.connect("eio1", Transport())
    since = {"epoch": relay.replay.epoch, "offset": 90}  # 10 x 100 bytes each time
    answers = [
        await relay.handlers.trigger_event("join", "/", sid, {"room": "shop", "since": since})
        for _ in range(5)
    ]
    assert [a["recovered"] for a in answers] == [True, True, True, False, False]


async def test_joins_are_charged_to_the_rate_limit() -> None:
    relay = Relay(CLIENT_EVENT_BURST="3", CLIENT_EVENT_RATE="0.001")
    sid, _ = await relay.connect("eio1", Transport())
    answers = [await relay.handlers.trigger_event("join", "/", sid, "shop") for _ in range(5)]
    assert [a["ok"] for a in answers] == [True, True, True, False, False]
    assert "rate limit" in answers[-1]["error"]


async def test_a_resume_from_another_epoch_fails_but_gets_this_runs_events() -> None:
    relay = Relay()
    relay.history("shop", 4)
    sid, _ = await relay.connect("eio1", Transport())
    answer = await relay.handlers.trigger_event(
        "join", "/", sid, {"room": "shop", "since": {"epoch": "old-run", "offset": 17}}
    )
    assert answer["recovered"] is False and "restarted" in answer["reason"]
    assert answer["replayed"] == 4 and answer["epoch"] == relay.replay.epoch
    assert "shop" in relay.rooms(sid)


async def test_a_client_event_named_connect_does_not_reconnect_it() -> None:
    relay = Relay(CLIENT_EVENTS="item_removed")
    sid, _ = await relay.connect("eio1", Transport())
    answer = await relay.handlers.trigger_event("connect", "/", sid, {"token": "x"})
    assert answer == {"ok": False, "error": "event 'connect' is not allowed (CLIENT_EVENTS)"}
    answer = await relay.handlers.trigger_event("disconnect", "/", sid, "x")
    assert answer["ok"] is False
    assert ("/", sid) in relay.handlers.connections


async def test_every_answer_gives_the_streams_position_so_nothing_is_needed_to_resume() -> None:
    # Given a room and the room-less stream with history, and a client that saw nothing
    relay = Relay()
    relay.history("shop", 4)
    relay.history(None, 2)
    transport = Transport()
    # When it connects asking for the position (since: null) and joins without one
    sid, _ = await relay.connect("eio1", transport, {"since": None})
    answer = await relay.handlers.trigger_event("join", "/", sid, "shop")
    # Then each answer says where its stream stands, and nothing is replayed
    epoch = relay.replay.epoch
    assert answer == {"ok": True, "room": "shop", "epoch": epoch, "offset": 4}
    await settled()
    [connect_answer] = [p.data for p in transport.sent if "relay:recovery" in str(p.data)]
    assert connect_answer == f'2["relay:recovery",{{"room":null,"epoch":"{epoch}","offset":2}}]'
    assert relay.counters.get(c.REPLAYED) == 0


async def test_a_connect_without_since_gets_no_connect_answer() -> None:
    relay = Relay()
    transport = Transport()
    sid, result = await relay.connect("eio1", transport, {})
    await settled()
    assert result is None and transport.sent == []
    assert BROADCAST_ROOM in relay.rooms(sid)


async def test_a_resume_that_cannot_recover_says_why_and_still_enters_at_the_position() -> None:
    # Given a room with 4 events of history, and a connected client
    relay = Relay(RESUME_MAX_BYTES="250", CLIENT_EVENT_BURST="100")
    relay.history("shop", 4)
    sid, _ = await relay.connect("eio1", Transport())
    epoch = relay.replay.epoch

    async def join(since: Any) -> dict[str, Any]:
        return await relay.handlers.trigger_event(
            "join", "/", sid, {"room": "shop", "since": since}
        )

    # When it resumes from what is not a position, from one ahead, and from too far back
    answers = [
        await join("7"),
        await join({"epoch": epoch, "offset": "7"}),
        await join({"epoch": epoch, "offset": True}),
        await join({"epoch": epoch, "offset": 9}),
        await join({"epoch": epoch, "offset": 0}),  # 4 x 100 bytes, over RESUME_MAX_BYTES
    ]

    # Then each answer says why, replays nothing, and gives the stream's position
    assert [a["reason"] for a in answers] == [
        "'since' must be an object with 'epoch' and 'offset'",
        "offset must be a non-negative integer, got '7'",
        "offset must be a non-negative integer, got True",
        "offset 9 is ahead of the stream (last is 4)",
        "missed 400 bytes, more than one resume may replay (RESUME_MAX_BYTES, "
        "RESUME_MAX_BYTES_PER_CONNECTION): resync",
    ]
    answer = {"ok": True, "room": "shop", "recovered": False, "replayed": 0, "epoch": epoch}
    assert [{k: v for k, v in a.items() if k != "reason"} for a in answers] == [
        answer | {"offset": 4}
    ] * 5
    assert relay.counters.get(c.RECOVERY_FAILED) == 5
    assert "shop" in relay.rooms(sid)


async def test_connections_open_one_per_namespace_and_close_cancels_the_token_expiry() -> None:
    # Given one client open on two namespaces, each with a token that expires in an hour
    connections = Connections()
    expired: list[str] = []

    def opened(namespace: str) -> Connection:
        identity = Identity("alice", ("*",), expires_at=time.time() + 3600)

        async def expire() -> None:
            expired.append(namespace)

        return connections.open(namespace, "sid1", Connection(identity, TokenBucket(1, 1)), expire)

    main, admin = opened("/"), opened("/admin")
    assert main.expiry is not None and admin.expiry is not None
    # Then it counts once per namespace, and each is found by (namespace, sid)
    assert len(connections) == 2 and list(connections) == [("/", "sid1"), ("/admin", "sid1")]
    assert connections.get("/", "sid1") is main and connections.get("/admin", "sid1") is admin
    # When one namespace closes (and again: a second close is nothing)
    connections.close("/", "sid1")
    connections.close("/", "sid1")
    # Then it is forgotten and its expiry cancelled; the other stays open with its own
    assert main.expiry.cancelled() and not admin.expiry.cancelled()
    assert connections.get("/", "sid1") is None and ("/admin", "sid1") in connections
    assert len(connections) == 1 and expired == []
    connections.close("/admin", "sid1")
    assert admin.expiry.cancelled() and len(connections) == 0


async def test_a_client_owns_its_connections_and_closes_them_whatever_ends_it() -> None:
    # Given a client on two namespaces, held by its engine.io socket (a real one of ours)
    relay = Relay()
    eio = BoundedEngineIO(async_mode="asgi")
    socket = AsyncSocket(eio, "eio1")
    HeartbeatSocket.adopt(socket)
    assert isinstance(socket, ClientOwner)
    connections = Connections()
    identity = Identity("alice", ("*",), expires_at=time.time() + 3600)

    async def expire() -> None:
        raise AssertionError("no expiry after the client went")

    main = connections.open("/", "s1", Connection(identity, TokenBucket(1, 1)), expire, socket)
    admin = connections.open("/a", "s2", Connection(identity, TokenBucket(1, 1)), expire, socket)
    # When one namespace is closed the usual way (its disconnect), then the client goes
    # without any other disconnect handler running (e.g. while its connect still ran)
    connections.close("/a", "s2")
    await socket.close(wait=False, abort=True)
    # Then every connection it had is closed once: forgotten, expiry cancelled
    assert len(connections) == 0
    assert main.expiry is not None and main.expiry.cancelled()
    assert admin.expiry is not None and admin.expiry.cancelled()
    # And one opened for a client already gone is closed at once
    late = connections.open("/", "s3", Connection(identity, TokenBucket(1, 1)), expire, socket)
    assert len(connections) == 0 and late.expiry is not None and late.expiry.cancelled()
    # And the handlers hand the real server's socket as the owner
    relay.sio.eio.sockets["eio2"] = socket2 = AsyncSocket(relay.sio.eio, "eio2")
    HeartbeatSocket.adopt(socket2)
    sid = await relay.sio.manager.pre_connect("eio2", "/")
    await relay.handlers.trigger_event("connect", "/", sid, {}, {})
    assert relay.handlers.connections.get("/", sid) is not None
    await socket2.close(wait=False, abort=True)
    assert relay.handlers.connections.get("/", sid) is None
