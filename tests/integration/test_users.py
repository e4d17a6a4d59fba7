"""Users through the whole path: a token's `sub` is a user whose every connection is in its own
stream (`relay:user:<sub>`), its token's subscribe claim names rooms the server enters it into,
and an envelope (or a message attribute) may target users. One server, then cluster mode: two
servers behind nginx with Redis, the user's devices on both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio

from tests.clients import RecordingClient
from tests.integration.helpers import eventually, metric, send_async
from tests.processes import Process, Processes, Stack, free_port, healthz
from tests.tokens import token

pytestmark = pytest.mark.timeout(120)

ALICE = "relay:user:alice"


def user_token(sub: str, **claims: Any) -> dict[str, str]:
    return {"token": token(sub=sub, **claims)}


async def connect(url: str, sub: str, **auth: Any) -> RecordingClient:
    """A client of user `sub`; `auth` adds to the connect payload (``since``, ``streams``)."""
    return await RecordingClient().connect(url, auth=user_token(sub) | auth)


async def connect_via(url: str, sub: str, affinity: str, **auth: Any) -> RecordingClient:
    """A client through nginx, which hashes `affinity` to pick its server."""
    client = RecordingClient()
    await client.sio.connect(
        f"{url}?affinity={affinity}", auth=user_token(sub) | auth, wait_timeout=10
    )
    return client


async def refusal(url: str, auth: dict[str, Any]) -> str:
    """Connect and expect a refusal; return the reason the server gave."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    client.on("connect_error", handler=reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, auth=auth, wait_timeout=10)
    await client.disconnect()
    return str(reasons)


async def recoveries(client: RecordingClient, count: int) -> list[dict[str, Any]]:
    """The first `count` connect answers (relay:recovery) the client got, in order."""
    while len(client.of("relay:recovery")) < count:
        await client.wait_for(len(client.events) + 1, timeout_s=10)
    return [dict(answer) for answer in client.of("relay:recovery")]


def relayed(client: RecordingClient) -> list[tuple[str, Any, str | None, int]]:
    """(event, data, room, offset) of each relayed event, in the order it came."""
    return [
        (event, p["data"], p["room"], p["offset"])
        for event, p in client.events
        if not event.startswith("relay:")
    ]


async def marker(stack: Stack, *clients: RecordingClient) -> None:
    """A broadcast every client waits for: what was sent before it reached them first (one
    server, one worker, sent after the earlier ones were received)."""
    await send_async(stack.sqs_client(), stack.queue_url, [{"event": "marker", "data": None}])
    for client in clients:
        await eventually(lambda c=client: bool(c.of("marker")), what="the marker", timeout_s=20)


async def test_an_event_for_a_user_reaches_each_of_its_connections_once_and_no_other_user(
    processes: Processes, stack: Stack
) -> None:
    # Given alice on two connections (one with a token that subscribes it to room news), and
    # bob on one, none of which joined anything
    processes.relay(stack)
    sqs = stack.sqs_client()
    phone = await RecordingClient().connect(
        stack.base_url, auth=user_token("alice", subscribe=["news"])
    )
    laptop = await connect(stack.base_url, "alice")
    bob = await connect(stack.base_url, "bob")

    # When an envelope names alice, a raw body's String.Array attribute names alice, and an
    # envelope names room news
    [by_envelope] = await send_async(sqs, stack.queue_url, [{"event": "shipped", "user": "alice"}])
    await eventually(lambda: len(phone.events) == len(laptop.events) == 1, what="the first")
    sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody='{"order": 7}',
        MessageAttributes={"user": {"DataType": "String.Array", "StringValue": '["alice"]'}},
    )
    await eventually(lambda: len(phone.events) == len(laptop.events) == 2, what="the second")
    await send_async(sqs, stack.queue_url, [{"event": "headline", "data": 1, "room": "news"}])
    await eventually(lambda: len(phone.events) == 3, what="the news")
    await marker(stack, phone, laptop, bob)

    # Then each of alice's connections got each of her events once, on her stream with one
    # offset each and the same MessageId; only the subscribed one got the news; bob got nothing
    # but the broadcast
    assert relayed(laptop) == [
        ("shipped", None, ALICE, 1),
        ("message", {"order": 7}, ALICE, 2),
        ("marker", None, None, 1),
    ]
    assert relayed(phone) == [
        ("shipped", None, ALICE, 1),
        ("message", {"order": 7}, ALICE, 2),
        ("headline", 1, "news", 1),
        ("marker", None, None, 1),
    ]
    assert phone.ids()[0] == laptop.ids()[0] == by_envelope
    assert relayed(bob) == [("marker", None, None, 1)]
    # And no one may join a user's stream, nor leave it
    assert (await bob.call("join", ALICE))["ok"] is False
    assert (await laptop.call("leave", ALICE))["ok"] is False
    for client in (phone, laptop, bob):
        await client.close()


async def test_a_tracking_client_cut_off_gets_its_user_streams_events_at_reconnect(
    processes: Processes, stack: Stack
) -> None:
    # Given alice tracking her streams (connected with since), her token subscribing room news
    processes.relay(stack)
    sqs = stack.sqs_client()
    subscribed = user_token("alice", subscribe=["news"])
    first = await RecordingClient().connect(
        stack.base_url, auth=subscribed | {"since": None, "streams": {}}
    )
    epoch = healthz(stack.base_url)["epoch"]
    # its connect answers: her stream, the claim's room, then, last, the room-less stream
    assert await recoveries(first, 3) == [
        {"room": ALICE, "epoch": epoch, "offset": 0},
        {"room": "news", "epoch": epoch, "offset": 0},
        {"room": None, "epoch": epoch, "offset": 0},
    ]
    await send_async(sqs, stack.queue_url, [{"event": "e", "data": 1, "user": "alice"}])
    await first.wait_for(4)
    positions = {ALICE: {"epoch": epoch, "offset": 1}, "news": {"epoch": epoch, "offset": 0}}
    await first.close()

    # When two events for alice and one for news go out while she is away, and she comes back
    # with the positions she had
    await send_async(
        sqs,
        stack.queue_url,
        [
            {"event": "e", "data": 2, "user": "alice"},
            {"event": "e", "data": 3, "user": ["alice", "bob"]},
            {"event": "e", "data": 4, "room": "news"},
        ],
    )
    await stack.wait_counter("emitted", 4)
    again = await RecordingClient().connect(
        stack.base_url,
        auth=subscribed
        | {"since": {"epoch": epoch, "offset": 0}, "streams": positions | {"elsewhere": None}},
    )
    answers = await recoveries(again, 3)

    # Then each stream's missed events come before its own answer, in the order user stream,
    # claim rooms, room-less stream; the entry for a room it is not subscribed to is ignored
    assert [(e, p.get("room"), p.get("offset")) for e, p in again.events] == [
        ("e", ALICE, 2),
        ("e", ALICE, 3),
        ("relay:recovery", ALICE, 3),
        ("e", "news", 1),
        ("relay:recovery", "news", 1),
        ("relay:recovery", None, 0),
    ]
    assert [p["data"] for e, p in again.events if e == "e"] == [2, 3, 4]
    assert answers == [
        {"room": ALICE, "epoch": epoch, "offset": 3, "recovered": True, "replayed": 2},
        {"room": "news", "epoch": epoch, "offset": 1, "recovered": True, "replayed": 1},
        {"room": None, "epoch": epoch, "offset": 0, "recovered": True, "replayed": 0},
    ]
    # And a connect whose streams are not an object is refused with the reason
    reason = await refusal(stack.base_url, subscribed | {"since": None, "streams": [1]})
    assert "'streams' must be an object" in reason
    await again.close()


# --- cluster mode -----------------------------------------------------------------------------
@dataclass
class TwoServers:
    stack: Stack
    nginx_port: int
    servers: dict[int, Process] = field(default_factory=dict)  # by HTTP port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def connected(self) -> dict[int, int]:
        return {
            port: int(metric(f"http://127.0.0.1:{port}", "relay_connected_clients"))
            for port in self.servers
        }


@pytest.fixture
def two_servers(processes: Processes, stack: Stack) -> Iterator[TwoServers]:
    """Two servers in cluster mode (one Redis) behind nginx, and one worker for both."""
    processes.sqs(stack)
    redis_port = free_port()
    processes.redis(redis_port)
    redis = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    cluster = TwoServers(stack, free_port())
    endpoints = []
    for n in (1, 2):
        http_port, zmq_port = free_port(), free_port()
        env = stack.env(PORT=str(http_port), ZMQ_BIND=f"tcp://127.0.0.1:{zmq_port}", **redis)
        server = processes.start(f"server{n}", ["-m", "server"], env)
        server.wait_ready(
            lambda port=http_port: healthz(f"http://127.0.0.1:{port}")["redis"],
            what=f"server {n} with Redis",
        )
        cluster.servers[http_port] = server
        endpoints.append(f"tcp://127.0.0.1:{zmq_port}")
    processes.balancer(cluster.nginx_port, list(cluster.servers))
    processes.worker(stack, ZMQ_CONNECT=",".join(endpoints), **redis)
    yield cluster


async def test_a_users_devices_on_two_servers_behind_nginx_each_get_its_event_once_and_recover(
    two_servers: TwoServers,
) -> None:
    # Given alice's devices connected through nginx until both servers hold one, and bob
    cluster = two_servers
    devices: list[RecordingClient] = []
    where: list[int] = []
    for n in range(16):  # each lands on either server: 16 on one alone is a 1 in 32,768 chance
        before = cluster.connected()
        devices.append(
            await connect_via(cluster.url, "alice", f"alice-{n}", since=None, streams={})
        )
        after = cluster.connected()
        [port] = [p for p in after if after[p] > before[p]]
        where.append(port)
        if len(set(where)) == 2:
            break
    assert set(where) == set(cluster.servers), where
    bob = await connect_via(cluster.url, "bob", "bob")
    # (a tracking device is answered for its user stream before its room-less one)
    for device in devices:
        assert [a["room"] for a in await recoveries(device, 2)] == [ALICE, None]

    # When one event names alice
    sqs = cluster.stack.sqs_client()
    [message_id] = await send_async(
        sqs, cluster.stack.queue_url, [{"event": "dm", "user": "alice"}]
    )

    # Then every device of hers, on both servers, gets it once, with the same offset
    for device in devices:
        await eventually(lambda d=device: bool(d.of("dm")), what="alice's event", timeout_s=20)
    # (bob's barrier: an event for him, sent after hers, reached him, and hers did not)
    await send_async(sqs, cluster.stack.queue_url, [{"event": "dm", "data": "bob", "user": "bob"}])
    await eventually(lambda: bool(bob.of("dm")), what="bob's event", timeout_s=20)
    assert [(p["data"], p["room"]) for p in bob.of("dm")] == [("bob", "relay:user:bob")]
    for device in devices:
        assert [(p["id"], p["room"], p["offset"]) for p in device.of("dm")] == [
            (message_id, ALICE, 1)
        ]

    # When the device on the first server is cut off, an event for alice goes out, and it
    # comes back on the other server (directly) with the positions it had
    cut, other = devices[0], where[-1]  # the last device is on the other server
    epoch = cut.of("dm")[0]["epoch"]
    await cut.close()
    [missed] = await send_async(
        sqs, cluster.stack.queue_url, [{"event": "dm", "data": 2, "user": "alice"}]
    )
    await eventually(lambda: len(devices[-1].of("dm")) == 2, what="the event while away")
    back = await connect(
        f"http://127.0.0.1:{other}",
        "alice",
        since={"epoch": epoch, "offset": 0},
        streams={ALICE: {"epoch": epoch, "offset": 1}},
    )

    # Then it gets it from the shared history, once, before its user stream's answer
    answers = await recoveries(back, 2)
    assert [(e, p["room"]) for e, p in back.events] == [
        ("dm", ALICE),
        ("relay:recovery", ALICE),
        ("relay:recovery", None),
    ]
    assert back.of("dm")[0]["id"] == missed
    assert answers[0] == {
        "room": ALICE, "epoch": epoch, "offset": 2, "recovered": True, "replayed": 1
    }  # fmt: skip
    for client in (*devices, bob, back):
        await client.close()


async def test_a_client_tracking_only_the_room_less_stream_gets_one_answer_and_its_users_events(
    processes: Processes, stack: Stack
) -> None:
    # Given a client of an earlier helper: it sends `since` but no `streams`, and takes every
    # relay:recovery for its room-less stream's answer
    processes.relay(stack)
    client = await RecordingClient().connect(
        stack.base_url, auth=user_token("alice", subscribe=["news"]) | {"since": None}
    )
    # Then its connect answer is the room-less one alone
    [(event, answer)] = await client.wait_for(1)
    assert (event, answer["room"]) == ("relay:recovery", None)
    # And it is in its user's stream all the same
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [{"event": "e", "data": 1, "user": "alice"}])
    [(event, payload)] = (await client.wait_for(2))[1:]
    assert (event, payload["room"], payload["data"]) == ("e", ALICE, 1)
    await client.close()
