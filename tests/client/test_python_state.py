"""The Python client helper with the backend read API and state rooms, against the relay's real
processes and a network the test cuts for real (devtools/netcut.py):

- a gapless first render: the backend reads a room's position (``GET /api/streams``) as it
  renders, the page hands it to ``await client.join(room, since=...)``, and the app gets every
  event after it once, in order, none before it, also across a reconnect;
- a state room (STATE_ROOMS): a join gets each key's latest event, then live ones; a
  reconnect resumes from the helper's position, and the state is not sent again."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqs_relay_client import Event, Recovery, RelayClient

from devtools.netcut import NetCut
from tests.integration.helpers import eventually, send_async
from tests.processes import Processes, Stack
from tests.tokens import token

pytestmark = pytest.mark.timeout(90)

API_KEY = "k" * 40
#: The read API on, and state kept in orders:* rooms.
STATE = {"STATE_ROOMS": "orders:*", "BACKEND_API_KEY": API_KEY}
ROOM = "shop"
ORDERS = "orders:1"


def read_position(base_url: str, room: str) -> dict[str, Any]:
    """What a backend reads as it renders: ``GET /api/streams?room=R&last=3``."""
    request = urllib.request.Request(f"{base_url}/api/streams?room={room}&last=3")
    request.add_header("Authorization", f"Bearer {API_KEY}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        page: dict[str, Any] = json.load(response)
    return page


def sale(n: int) -> dict[str, Any]:
    return {"event": "sale", "data": n, "room": ROOM}


def order(key: str, version: int, status: str) -> dict[str, Any]:
    return {"event": "order", "data": status, "room": ORDERS, "key": key, "version": version}


async def relay_with_state(processes: Processes, stack: Stack) -> None:
    stack.extra.update(STATE)
    processes.relay(stack)


@pytest.fixture
async def net(stack: Stack) -> AsyncIterator[NetCut]:
    async with NetCut(stack.http_port) as net:
        yield net


def helper(net: NetCut, recoveries: list[Recovery]) -> RelayClient:
    """A helper through the cuttable network that joins nothing by itself; the resumes of
    the rooms this file joins go to `recoveries` (not the user's stream's)."""
    return RelayClient(
        net.url,
        token=lambda: token(sub="viewer"),
        transports=["websocket"],
        on_recovery=lambda r: recoveries.append(r) if r.room in (ROOM, ORDERS) else None,
        reconnection_delay=0.1,
        reconnection_delay_max=0.5,
    )


async def take(relay: RelayClient, count: int, timeout_s: float = 30) -> list[Event]:
    return [await asyncio.wait_for(anext(relay), timeout_s) for _ in range(count)]


async def test_python_helper_joining_from_a_rendered_position_gets_each_later_event_once(
    processes: Processes, stack: Stack, net: NetCut
) -> None:
    # Given events 1-3 in room shop, and a backend that reads the room's position as it
    # renders a page
    await relay_with_state(processes, stack)
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [sale(n) for n in (1, 2, 3)])
    await stack.wait_counter("emitted", 3)
    page = read_position(stack.base_url, ROOM)
    assert page["offset"] == 3 and [e["payload"]["data"] for e in page["events"]] == [1, 2, 3]

    # When events 4 and 5 come after the render, then the page's helper joins from the
    # rendered position, then event 6 comes
    await send_async(sqs, stack.queue_url, [sale(n) for n in (4, 5)])
    await stack.wait_counter("emitted", 5)
    recoveries: list[Recovery] = []
    async with helper(net, recoveries) as client:
        since = {"epoch": page["epoch"], "offset": page["offset"]}
        answer = await client.join(ROOM, since=since)
        await send_async(sqs, stack.queue_url, [sale(6)])

        # Then the app gets 4, 5 and 6, in order, each once, none of those the page had;
        # the server replayed the two after the position
        got = await take(client, 3)
        assert [(e.data, e.offset) for e in got] == [(4, 4), (5, 5), (6, 6)]
        assert answer is not None and answer["recovered"] is True and answer["replayed"] == 2
        assert recoveries == [Recovery(ROOM, True, 2)]

        # When the network is cut, event 7 is sent meanwhile, and the network comes back
        net.cut()
        await send_async(sqs, stack.queue_url, [sale(7)])
        await stack.wait_counter("emitted", 7)
        net.restore()

        # Then 7 comes once, resumed from the helper's own position (6), not the rendered one
        [missed] = await take(client, 1)
        assert (missed.data, missed.offset) == (7, 7)
        await eventually(lambda: len(recoveries) == 2, what="the reconnect's resume")
        assert recoveries[1] == Recovery(ROOM, True, 1)
        # and a live event follows with nothing repeated in between
        await send_async(sqs, stack.queue_url, [sale(8)])
        [live] = await take(client, 1)
        assert (live.data, live.offset) == (8, 8)


async def test_python_helper_in_a_state_room_gets_each_keys_latest_then_live_and_no_state_again(
    processes: Processes, stack: Stack, net: NetCut
) -> None:
    # Given a state room with updates of orders a, b, a (a at version 2 last), and a late
    # update of a at version 1 that the server drops
    await relay_with_state(processes, stack)
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [order("a", 1, "new"), order("b", 1, "new")])
    await send_async(sqs, stack.queue_url, [order("a", 2, "paid")])
    await stack.wait_counter("emitted", 3)
    await send_async(sqs, stack.queue_url, [order("a", 1, "late")])
    await stack.wait_counter("state_stale_dropped", 1)

    # When the helper joins the room, then b changes
    recoveries: list[Recovery] = []
    async with helper(net, recoveries) as client:
        answer = await client.join(ORDERS)
        await send_async(sqs, stack.queue_url, [order("b", 2, "shipped")])

        # Then it gets b's and a's latest (oldest first, with their own offsets), then b's
        # change live, each once; the join answer counted the state and was no resume
        def seen(events: list[Event]) -> list[tuple[str, str, int | None]]:
            return [(e.payload["key"], e.data, e.offset) for e in events]

        assert seen(await take(client, 3)) == [
            ("b", "new", 2),
            ("a", "paid", 3),
            ("b", "shipped", 4),
        ]
        assert answer is not None and answer["state"] == 2 and answer["offset"] == 3, answer
        assert recoveries == []

        # When the network is cut, a changes meanwhile, and the network comes back
        net.cut()
        await send_async(sqs, stack.queue_url, [order("a", 3, "shipped")])
        await stack.wait_counter("emitted", 5)
        net.restore()

        # Then the join resumes from offset 4: the one change it missed is replayed, the state
        # is not sent again (one replayed, not three)
        [missed] = await take(client, 1)
        assert seen([missed]) == [("a", "shipped", 5)]
        await eventually(lambda: len(recoveries) == 1, what="the reconnect's resume")
        assert recoveries == [Recovery(ORDERS, True, 1)]
        # and a live update follows with nothing repeated in between
        await send_async(sqs, stack.queue_url, [order("b", 3, "delivered")])
        [live] = await take(client, 1)
        assert seen([live]) == [("b", "delivered", 6)]
