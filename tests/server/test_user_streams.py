"""The streams a connection gets from the server: its user's own (``relay:user:<sub>``) and the
rooms its token's subscribe claim lists; how a token names them, and how a connect enters and
resumes them, against python-socketio's real server and manager."""

from __future__ import annotations

import logging
from typing import Any

import jwt
import pytest
import socketio
from socketio.exceptions import ConnectionRefusedError as Refused

from server.payload import BROADCAST_ROOM
from server.sessions.auth import ANYONE, Authenticator, AuthError
from shared import counters as c
from shared.envelope import MAX_USER_LENGTH
from shared.settings import load_settings
from tests.server import test_handlers as handlers
from tests.server.test_handlers import Transport, settled
from tests.tokens import TEST_SECRET, token

ALICE = "relay:user:alice"
AWS_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


def authenticator(**env: str) -> Authenticator:
    return Authenticator.from_settings(
        load_settings({"SQS_QUEUE_URL": AWS_QUEUE, "JWT_SECRET": TEST_SECRET} | env)
    )


# --- what a token names --------------------------------------------------------------------------
def test_a_tokens_sub_is_its_user_stream_first_then_the_subscribe_claims_rooms_once_each() -> None:
    auth = authenticator()
    assert auth.verify({"token": token(sub="alice")}).streams == (ALICE,)
    subscribed = token(sub="alice", subscribe=["news", "sport", "news"])
    assert auth.verify({"token": subscribed}).streams == (ALICE, "news", "sport")
    # the claim is a setting
    other = authenticator(JWT_SUBSCRIBE_CLAIM="auto")
    assert other.verify({"token": token(sub="bob", auto=["news"])}).streams == (
        "relay:user:bob",
        "news",
    )


def test_without_authentication_there_is_no_user_and_a_demo_token_is_its_own_user() -> None:
    assert ANYONE.streams == ()
    assert authenticator(AUTH="none").verify({}).streams == ()
    demo = authenticator(DEMO="1")
    claims = jwt.decode(demo.demo_token(), options={"verify_signature": False})
    assert claims["sub"].startswith("demo-")
    assert demo.verify({"token": demo.demo_token()}).streams[0].startswith("relay:user:demo-")
    # each demo token is a user of its own
    assert (
        demo.verify({"token": demo.demo_token()}).streams
        != demo.verify({"token": demo.demo_token()}).streams
    )


def test_a_subscribed_room_may_be_joined_again_without_the_rooms_claim() -> None:
    identity = authenticator().verify({"token": token(["shop"], sub="alice", subscribe=["news"])})
    assert identity.may_join("news") and identity.may_join("shop")
    assert not identity.may_join("sport")


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ("news", "token claim 'subscribe' must be a list of room names"),
        (["news", 7], "token claim 'subscribe' must be a list of room names"),
        (["a", "b", "c"], "token claim 'subscribe' lists 3 rooms, over MAX_MESSAGE_ROOMS=2"),
        (["relay:user:bob"], "has room 'relay:user:bob': room names starting with 'relay:'"),
        ([""], "has room '': room must be a non-empty string"),
        (["x" * 201], "room name longer than 200 characters"),
    ],
)
def test_a_malformed_subscribe_claim_refuses_the_connect_and_says_why(
    claim: Any, reason: str
) -> None:
    auth = authenticator(MAX_MESSAGE_ROOMS="2")
    with pytest.raises(AuthError) as caught:
        auth.verify({"token": token(sub="alice", subscribe=claim)})
    assert reason in str(caught.value)


def test_a_sub_that_cannot_name_a_user_gets_no_user_stream_and_a_warning_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth = authenticator()
    long_sub = token(sub="u" * (MAX_USER_LENGTH + 1), subscribe=["news"])
    with caplog.at_level(logging.WARNING, logger="server.sessions.auth"):
        first = auth.verify({"token": long_sub})
        second = auth.verify({"token": token(sub="tab\there")})
    assert first.streams == ("news",) and second.streams == ()
    warnings = [r.getMessage() for r in caplog.records if "cannot name a user stream" in r.message]
    assert len(warnings) == 1, warnings
    assert auth.verify({"token": token(sub="u" * MAX_USER_LENGTH)}).streams == (
        f"relay:user:{'u' * MAX_USER_LENGTH}",
    )


# --- the connect ---------------------------------------------------------------------------------
class Relay(handlers.Relay):
    """python-socketio's real server and manager, the session handlers with JWT, an in-memory
    history; engine.io's socket stands in (tests.server.test_handlers.Transport)."""

    def __init__(self, **settings: str) -> None:
        super().__init__(**{"AUTH": "jwt", "SQS_QUEUE_URL": AWS_QUEUE, "JWT_SECRET": TEST_SECRET}
                         | settings)  # fmt: skip

    def history(self, room: str | None, count: int, size: int = 100) -> None:
        for _ in range(count):
            stream = ("/", room)
            offset = self.replay.next_offset(stream)
            payload = {"room": room, "offset": offset, "x": "y" * size}
            self.replay.append(stream, offset, "e", payload, size)

    def position(self, offset: int) -> dict[str, Any]:
        return {"epoch": self.replay.epoch, "offset": offset}

    async def connect(self, transport: Transport, auth: dict[str, Any]) -> tuple[str, Any]:
        """python-socketio's own connect sequence, with the handler in the middle."""
        self.sio.eio.sockets["eio1"] = transport
        sid = await self.sio.manager.pre_connect("eio1", "/")
        try:
            result = await self.handlers.trigger_event("connect", "/", sid, {}, auth)
        except Refused:
            await self.sio.manager.disconnect(sid, "/")
            raise
        if result is not False:
            await self.sio.manager.connect(sid, "/")
        else:
            await self.sio.manager.disconnect(sid, "/")
        return sid, result

    def rooms(self, sid: str) -> set[str]:
        return set(self.sio.manager.get_rooms(sid, "/"))


class Watched(Transport):
    """Notes, as each packet is sent, which streams the (one) client is in so far."""

    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self.rooms_at_send: list[set[str | None]] = []
        self._rooms = relay.sio.manager.rooms

    async def send(self, packet: Any) -> None:
        self.rooms_at_send.append({r for r, members in self._rooms.get("/", {}).items() if members})
        await super().send(packet)

    def events(self) -> list[Any]:
        return [socketio.packet.Packet(encoded_packet=p.data).data for p in self.sent]


ALICE_NEWS = token(sub="alice", subscribe=["news", "sport"])


async def test_a_tracking_connect_resumes_its_user_stream_then_claim_rooms_then_roomless() -> None:
    # Given history on alice's stream, on her two subscribed rooms and on the room-less stream
    relay = Relay()
    relay.history(ALICE, 3)
    relay.history("news", 2)
    relay.history("sport", 1)
    relay.history(None, 2)
    transport = Watched(relay)

    # When she connects tracking (since), with positions for her stream and news (none for
    # sport), and one for a room she is not subscribed to
    sid, result = await relay.connect(
        transport,
        {
            "token": ALICE_NEWS,
            "since": relay.position(1),
            "streams": {ALICE: relay.position(1), "news": relay.position(0), "shop": None},
        },
    )
    await settled()

    # Then each stream's missed events, then its answer, in the order: her stream, news, sport
    # (the position alone), and last the room-less stream
    events = transport.events()
    assert [(e, p["room"], p["offset"]) for e, p in events] == [
        ("e", ALICE, 2),
        ("e", ALICE, 3),
        ("relay:recovery", ALICE, 3),
        ("e", "news", 1),
        ("e", "news", 2),
        ("relay:recovery", "news", 2),
        ("relay:recovery", "sport", 1),
        ("e", None, 2),
        ("relay:recovery", None, 2),
    ]
    answers = [p for e, p in events if e == "relay:recovery"]
    assert answers == [
        {"room": ALICE, "recovered": True, "replayed": 2} | relay.position(3),
        {"room": "news", "recovered": True, "replayed": 2} | relay.position(2),
        {"room": "sport"} | relay.position(1),
        {"room": None, "recovered": True, "replayed": 1} | relay.position(2),
    ]
    # And each stream is entered only once its missed events were sent (no live event between)
    in_rooms = [rooms - {sid, None} for rooms in transport.rooms_at_send]
    assert in_rooms[0] == set() and in_rooms[2] == {ALICE}
    assert in_rooms[5] == {ALICE, "news"} and in_rooms[7] == {ALICE, "news", "sport"}
    assert in_rooms[8] == {ALICE, "news", "sport", BROADCAST_ROOM}
    assert result is None and relay.rooms(sid) == {sid, ALICE, "news", "sport", BROADCAST_ROOM}
    assert "shop" not in relay.rooms(sid)
    assert relay.counters.get(c.REPLAYED) == 5


async def test_a_connect_without_since_enters_every_stream_and_gets_no_answer() -> None:
    relay = Relay()
    relay.history(ALICE, 3)
    transport = Transport()
    sid, result = await relay.connect(
        transport, {"token": ALICE_NEWS, "streams": {ALICE: relay.position(0)}}
    )
    await settled()
    assert result is None and transport.sent == []
    assert relay.rooms(sid) == {sid, ALICE, "news", "sport", BROADCAST_ROOM}


@pytest.mark.parametrize(
    ("streams", "reason"),
    [
        ([], "'streams' must be an object of {room: position}"),
        ("relay:user:alice", "'streams' must be an object of {room: position}"),
        (
            {f"r{n}": None for n in range(4)},
            "'streams' has 4 entries, over 1 + MAX_MESSAGE_ROOMS=3",
        ),
    ],
)
async def test_a_connect_with_malformed_streams_is_refused_with_the_reason_and_kept_nowhere(
    streams: Any, reason: str
) -> None:
    relay = Relay(MAX_MESSAGE_ROOMS="2")
    with pytest.raises(Refused) as caught:
        await relay.connect(
            Transport(), {"token": token(sub="alice"), "since": None, "streams": streams}
        )
    assert reason in str(caught.value)
    assert len(relay.handlers.connections) == 0
    assert relay.counters.get(c.CONNECT_REFUSED) == 1
    # (at the bound it connects)
    at_bound = {f"r{n}": None for n in range(3)}
    sid, result = await relay.connect(
        Transport(), {"token": token(sub="alice"), "since": None, "streams": at_bound}
    )
    assert result is None and ALICE in relay.rooms(sid)


async def test_the_connections_resume_budget_spans_its_streams() -> None:
    # Given a connection budget that her stream's missed events use up (3 x 100 bytes)
    relay = Relay(RESUME_MAX_BYTES_PER_CONNECTION="350")
    relay.history(ALICE, 3)
    relay.history("news", 1)
    transport = Transport()
    since = relay.position(0)
    # When she resumes both from the start
    await relay.connect(
        transport,
        {"token": ALICE_NEWS, "since": since, "streams": {ALICE: since, "news": since}},
    )
    await settled()
    # Then her stream is replayed, news is refused with the reason and its position
    events = [socketio.packet.Packet(encoded_packet=p.data).data for p in transport.sent]
    answers = {p["room"]: p for e, p in events if e == "relay:recovery"}
    assert answers[ALICE]["recovered"] is True and answers[ALICE]["replayed"] == 3
    assert answers["news"]["recovered"] is False and answers["news"]["offset"] == 1
    assert "RESUME_MAX_BYTES_PER_CONNECTION" in answers["news"]["reason"]
    assert relay.counters.get(c.RESUME_REFUSED) == 1


async def test_a_transport_gone_while_resuming_a_user_stream_leaves_no_ghost() -> None:
    # Given 50 events on alice's stream, and a transport that goes after the 5th packet
    relay = Relay()
    relay.history(ALICE, 50)
    since = relay.position(0)
    # When she connects resuming her stream from the start
    sid, result = await relay.connect(
        Transport(close_after=5), {"token": ALICE_NEWS, "since": since, "streams": {ALICE: since}}
    )
    # Then the connect is refused, nothing of it is kept, and it entered no later stream
    assert result is False
    assert len(relay.handlers.connections) == 0
    assert not relay.rooms(sid) & {"news", "sport", BROADCAST_ROOM}


async def test_a_client_event_goes_to_the_subscribed_rooms_never_to_the_senders_user_stream() -> (
    None
):
    # Given alice with a token that subscribes her to news, and bob with none
    relay = Relay(CLIENT_EVENTS="typing")
    sid, _ = await relay.connect(Transport(), {"token": ALICE_NEWS})
    relay.sio.eio.sockets["eio2"] = Transport()
    bob = await relay.sio.manager.pre_connect("eio2", "/")
    await relay.handlers.trigger_event("connect", "/", bob, {}, {"token": token(sub="bob")})
    await relay.sio.manager.connect(bob, "/")
    # When each sends a client event
    from_alice = await relay.handlers.trigger_event("typing", "/", sid, 1)
    from_bob = await relay.handlers.trigger_event("typing", "/", bob, 1)
    # Then alice's goes to her subscribed rooms, bob's (in no room) to the whole namespace;
    # neither to a user's stream
    assert from_alice == {"ok": True, "relayed_to": ["news", "sport"]}
    assert from_bob == {"ok": True, "relayed_to": None}
    assert "relay:user:bob" in relay.rooms(bob)
