"""State rooms and the backend read API through the whole path: a client that joins a state
room gets its latest event per key at once, then live events with no gap and no repeat; a
version never rolls a key's state back; a backend reads a stream's position while it renders,
and a client that joins from it misses nothing and gets nothing twice. One server, then
cluster mode (the state in Redis outlives a server)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.clients import RecordingClient
from tests.integration.helpers import eventually, send_async
from tests.processes import Processes, Stack, free_port, healthz
from tests.tokens import token

pytestmark = pytest.mark.timeout(120)

API_KEY = "k" * 40
STATE = {"STATE_ROOMS": "orders:*", "BACKEND_API_KEY": API_KEY}

_OPEN: list[RecordingClient] = []


@pytest.fixture(autouse=True)
async def _disconnect_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().sio.disconnect()


async def client(url: str, **auth: Any) -> RecordingClient:
    recording = RecordingClient()
    _OPEN.append(recording)
    await recording.sio.connect(url, auth={"token": token(sub="viewer")} | auth, wait_timeout=10)
    return recording


def order(key: str, version: int | None, status: str, room: str = "orders:1") -> dict[str, Any]:
    envelope: dict[str, Any] = {"event": "order", "data": {"status": status}, "room": room}
    envelope["key"] = key
    if version is not None:
        envelope["version"] = version
    return envelope


def seen(recording: RecordingClient) -> list[tuple[str | None, str, int]]:
    """(key, status, offset) of each order event, in the order it came."""
    return [(p.get("key"), p["data"]["status"], p["offset"]) for p in recording.of("order")]


def read_api(base_url: str, query: str, key: str | None = API_KEY) -> tuple[int, Any]:
    request = urllib.request.Request(f"{base_url}/api/streams?{query}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


async def emitted(stack: Stack, count: int) -> None:
    await stack.wait_counter("emitted", count)


async def test_a_client_joining_a_state_room_gets_each_keys_latest_then_live_events_once(
    processes: Processes, stack: Stack
) -> None:
    # Given a relay whose orders:* rooms keep state, and four updates of two orders, the last
    # one older than what order a holds
    stack.extra.update(STATE)
    processes.relay(stack)
    sqs = stack.sqs_client()
    await send_async(
        sqs,
        stack.queue_url,
        [order("a", 1, "new"), order("b", 1, "new"), order("a", 2, "paid")],
    )
    await emitted(stack, 3)
    await send_async(sqs, stack.queue_url, [order("a", 1, "late")])
    await stack.wait_counter("state_stale_dropped", 1)

    # When a client joins the room, and then order b changes
    viewer = await client(stack.base_url)
    answer = await viewer.sio.call("join", {"room": "orders:1"}, timeout=10)
    await send_async(sqs, stack.queue_url, [order("b", 2, "shipped")])
    await eventually(lambda: len(seen(viewer)) == 3, what="the state, then the live update")

    # Then it got b's and a's latest at once (oldest first, each with its offset), the join
    # answer said so, then b's change live, above the answer's position; the late update of a
    # never went out
    assert answer["ok"] and answer["offset"] == 3 and answer["state"] == 2, answer
    assert seen(viewer) == [("b", "new", 2), ("a", "paid", 3), ("b", "shipped", 4)]
    assert healthz(stack.base_url)["counters"]["state_stale_dropped"] == 1


async def test_a_connection_subscribed_to_a_state_room_gets_its_state_at_connect(
    processes: Processes, stack: Stack
) -> None:
    # Given a state room with one order's state
    stack.extra.update(STATE)
    processes.relay(stack)
    await send_async(stack.sqs_client(), stack.queue_url, [order("a", None, "new")])
    await emitted(stack, 1)

    # When a client connects with a token that subscribes it to the room
    viewer = await client(stack.base_url, token=token(sub="viewer", subscribe=["orders:1"]))

    # Then it got the state without asking
    await eventually(lambda: seen(viewer) == [("a", "new", 1)], what="the state at connect")


async def test_a_backend_reads_the_position_and_a_client_joining_from_it_misses_nothing(
    processes: Processes, stack: Stack
) -> None:
    # Given three events in room shop, read by a backend as it renders a page
    stack.extra.update(STATE)
    processes.relay(stack)
    sqs = stack.sqs_client()
    await send_async(
        sqs, stack.queue_url, [{"event": "sale", "data": n, "room": "shop"} for n in (1, 2, 3)]
    )
    await emitted(stack, 3)
    status, page = read_api(stack.base_url, "room=shop&last=2")

    # When two more are sent after the render, then a client joins from the page's position,
    # then one more comes
    await send_async(
        sqs, stack.queue_url, [{"event": "sale", "data": n, "room": "shop"} for n in (4, 5)]
    )
    await emitted(stack, 5)
    viewer = await client(stack.base_url)
    since = {"epoch": page["epoch"], "offset": page["offset"]}
    answer = await viewer.sio.call("join", {"room": "shop", "since": since}, timeout=10)
    await send_async(sqs, stack.queue_url, [{"event": "sale", "data": 6, "room": "shop"}])
    await eventually(lambda: len(viewer.of("sale")) == 3, what="the missed and the live")

    # Then the page had the position and the last two events; the client got each event after
    # it once, in order, and none it already had
    assert status == 200
    assert page["offset"] == 3 and page["room"] == "shop"
    assert [e["payload"]["data"] for e in page["events"]] == [2, 3]
    assert answer["recovered"] is True and answer["replayed"] == 2
    assert [(p["data"], p["offset"]) for p in viewer.of("sale")] == [(4, 4), (5, 5), (6, 6)]


async def test_the_read_api_refuses_clients_tokens_bad_requests_and_too_many_requests(
    processes: Processes, stack: Stack
) -> None:
    # Given a server with the read API and a rate of one request a second
    processes.server(stack, **STATE, BACKEND_API_RATE="1")

    # When it is asked without the key, with a client's token, for too many events, then twice
    no_key = read_api(stack.base_url, "room=shop", key=None)
    client_token = read_api(stack.base_url, "room=shop", key=token(sub="mallory"))
    too_many = read_api(stack.base_url, "room=shop&last=1000")
    bad_room = read_api(stack.base_url, "room=relay:all")
    first = read_api(stack.base_url, "user=alice")
    second = read_api(stack.base_url, "room=shop")

    # Then each refusal says why; the first good request is answered (a user's own stream,
    # nothing in it yet) and the one right after it is over the rate
    assert no_key[0] == client_token[0] == 401
    assert too_many[0] == 400 and "last" in too_many[1]["error"]
    assert bad_room[0] == 400
    assert first == (
        200,
        {
            "namespace": "/",
            "room": "relay:user:alice",
            "epoch": first[1]["epoch"],
            "offset": 0,
            "events": [],
        },
    )
    assert second[0] == 429


async def test_the_read_api_is_off_without_a_key(processes: Processes, stack: Stack) -> None:
    processes.server(stack)
    status, body = read_api(stack.base_url, "room=shop")
    assert status == 404 and "BACKEND_API_KEY" in body["error"]


# --- cluster mode -----------------------------------------------------------------------------
async def test_in_cluster_mode_the_state_outlives_a_server_and_versions_hold_across_servers(
    processes: Processes, stack: Stack
) -> None:
    # Given two servers on one Redis with state rooms, a worker feeding both, and two orders
    processes.sqs(stack)
    redis_port = free_port()
    processes.redis(redis_port)
    urls, servers, endpoints = [], [], []
    for n in (1, 2):
        http_port, zmq_port = free_port(), free_port()
        env = stack.env(
            PORT=str(http_port),
            ZMQ_BIND=f"tcp://127.0.0.1:{zmq_port}",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            **STATE,
        )
        server = processes.start(f"server{n}", ["-m", "server"], env)
        url = f"http://127.0.0.1:{http_port}"
        server.wait_ready(lambda u=url: healthz(u)["redis"], what=f"server{n}'s Redis")
        urls.append(url)
        servers.append(server)
        endpoints.append(f"tcp://127.0.0.1:{zmq_port}")
    processes.worker(
        stack, ZMQ_CONNECT=",".join(endpoints), REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"
    )
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [order("a", 5, "paid"), order("b", None, "new")])
    watcher = await client(urls[1])
    await watcher.sio.call("join", {"room": "orders:1"}, timeout=10)
    await eventually(lambda: len(seen(watcher)) == 2, what="both orders")

    # When the first server is killed, an older version of a comes, then a newer one of b,
    # and a client joins on the second server
    servers[0].kill_group()
    await send_async(sqs, stack.queue_url, [order("a", 4, "late"), order("b", None, "shipped")])
    await eventually(lambda: len(seen(watcher)) == 3, what="b's change")
    viewer = await client(urls[1])
    answer = await viewer.sio.call("join", {"room": "orders:1"}, timeout=10)
    await eventually(lambda: len(seen(viewer)) == 2, what="the state")

    # Then the newcomer got a at version 5 and b's latest from Redis; nobody got the late a
    assert [s[:2] for s in seen(viewer)] == [("a", "paid"), ("b", "shipped")]
    assert answer["state"] == 2 and answer["offset"] == seen(viewer)[-1][2]
    assert [s[:2] for s in seen(watcher)] == [("a", "paid"), ("b", "new"), ("b", "shipped")]
    status, page = read_api(urls[1], "room=orders:1&last=5")
    assert status == 200
    assert [s["payload"]["data"]["status"] for s in page["state"]] == ["paid", "shipped"]
    assert page["offset"] == answer["offset"]
