"""The Python client helper (sqs_relay_client.RelayClient, client/ in the repository) against
real processes, with the network between it and the server cut for real
(devtools/netcut.py): it resumes by itself, also before it received anything and also when
the server has not noticed the cut."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqs_relay_client import Event, Recovery, RelayClient

from devtools.netcut import NetCut
from tests.integration.helpers import eventually, metric, send
from tests.processes import Processes, Stack
from tests.tokens import token


def start_relay(processes: Processes, stack: Stack, **server_env: str) -> Stack:
    processes.sqs(stack)
    processes.server(stack, **server_env)
    processes.worker(stack)
    return stack


@pytest.fixture
async def relay(processes: Processes, stack: Stack) -> Stack:
    return start_relay(processes, stack)


@pytest.fixture
async def net(relay: Stack) -> AsyncIterator[NetCut]:
    async with NetCut(relay.http_port) as net:
        yield net


def joined_and_room_less(recoveries: list[Recovery]) -> Callable[[Recovery], None]:
    """Records the recoveries of the room-less stream and the joined rooms. The user's stream
    (``relay:user:test``, from the token's ``sub``) is resumed too: that is
    tests/client/test_user_streams.py's to test."""

    def record(recovery: Recovery) -> None:
        if not (recovery.room or "").startswith("relay:user:"):
            recoveries.append(recovery)

    return record


def listener(net: NetCut, recoveries: list[Recovery], **options: Any) -> RelayClient:
    return RelayClient(
        net.url,
        token=token,  # a fresh token for every connect
        rooms=["shop"],
        transports=["websocket"],
        on_recovery=joined_and_room_less(recoveries),
        reconnection_delay=0.1,
        reconnection_delay_max=0.5,
        **options,
    )


async def take(relay: RelayClient, count: int, timeout_s: float = 30) -> list[Event]:
    return [await asyncio.wait_for(anext(relay), timeout_s) for _ in range(count)]


def by_stream(events: list[Event]) -> dict[str | None, list[Any]]:
    streams: dict[str | None, list[Any]] = {}
    for event in events:
        streams.setdefault(event.room, []).append(event.data)
    return streams


async def test_a_client_that_received_nothing_yet_gets_what_it_missed(
    relay: Stack, net: NetCut
) -> None:
    # Given a client in room shop that has received no event at all
    sqs = relay.sqs_client()
    recoveries: list[Recovery] = []
    async with listener(net, recoveries) as client:
        # When its network goes, 3 shop events and 2 for everyone are sent, and it comes back
        net.cut()
        send(sqs, relay.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(3)])
        send(sqs, relay.queue_url, [{"event": "e", "data": n} for n in range(2)])
        await relay.wait_counter("emitted", 5)
        net.restore()

        # Then all 5 arrive, each once and in order per stream, and both streams recovered
        got = await take(client, 5)
        assert by_stream(got) == {"shop": [0, 1, 2], None: [0, 1]}
        await eventually(lambda: len(recoveries) == 2, what="two recovery reports")
        assert set(recoveries) == {Recovery("shop", True, 3), Recovery(None, True, 2)}
        # and live events follow, with nothing repeated in between
        send(sqs, relay.queue_url, [{"event": "e", "data": "live", "room": "shop"}])
        [live] = await take(client, 1)
        assert (live.room, live.data, live.offset) == ("shop", "live", 4)


async def test_five_cuts_in_a_row_lose_nothing_and_repeat_nothing(
    relay: Stack, net: NetCut
) -> None:
    # Given a listening client that saw one event per stream
    sqs = relay.sqs_client()
    recoveries: list[Recovery] = []
    sent: list[str] = []
    async with listener(net, recoveries) as client:
        sent += send(sqs, relay.queue_url, [{"event": "e", "data": "first", "room": "shop"}])
        sent += send(sqs, relay.queue_url, [{"event": "e", "data": "first"}])
        got = await take(client, 2)
        clients_before = metric(relay.base_url, "relay_connected_clients")

        # When its network is cut 5 times, with 2 shop events and 2 for everyone each time
        for cycle in range(5):
            net.cut()
            bodies: list[Any] = [{"event": "e", "data": [cycle, n], "room": "shop"} for n in (0, 1)]
            bodies += [{"event": "e", "data": [cycle, n]} for n in (0, 1)]
            sent += send(sqs, relay.queue_url, bodies)
            await relay.wait_counter("emitted", len(sent))
            net.restore()
            got += await take(client, 4)
            await eventually(lambda c=cycle: len(recoveries) == 2 * (c + 1), what="recoveries")

        # Then every event arrived exactly once, in order per stream,
        assert [e.id for e in got].count(got[0].id) == 1 and len({e.id for e in got}) == 22
        expected = ["first"] + [[c, n] for c in range(5) for n in (0, 1)]
        assert by_stream(got) == {"shop": expected, None: expected}
        assert all(r.recovered and r.replayed == 2 for r in recoveries)
        # although the server still held every cut connection: it had noticed none of them
        assert metric(relay.base_url, "relay_connected_clients") == clients_before + 5
        # and nothing more comes
        send(sqs, relay.queue_url, [{"event": "e", "data": "live"}])
        [live] = await take(client, 1)
        assert live.data == "live"


async def test_a_client_past_the_replay_window_is_told_to_resync(
    processes: Processes, stack: Stack
) -> None:
    # Given a server that keeps 2 events per stream, and a client in room shop
    sqs = start_relay(processes, stack, REPLAY_MAX_EVENTS="2").sqs_client()
    recoveries: list[Recovery] = []
    async with NetCut(stack.http_port) as net, listener(net, recoveries) as client:
        # When 4 shop events go out while it is away
        net.cut()
        send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(4)])
        await stack.wait_counter("emitted", 4)
        net.restore()
        # Then the shop stream says it must resync, and live events go on from there
        await eventually(lambda: any(r.room == "shop" for r in recoveries), what="a recovery")
        [shop] = [r for r in recoveries if r.room == "shop"]
        assert not shop.recovered and shop.reason and "out of the replay window" in shop.reason
        send(sqs, stack.queue_url, [{"event": "e", "data": "live", "room": "shop"}])
        [live] = await take(client, 1)
        assert (live.data, live.offset) == ("live", 5)


async def test_an_expired_token_is_replaced_and_the_stream_resumed(
    processes: Processes, stack: Stack
) -> None:
    # Given a server without clock-skew leeway, and a client whose tokens last 2 seconds
    sqs = start_relay(processes, stack, JWT_LEEWAY_S="0").sqs_client()
    issued: list[str] = []

    def short_token() -> str:
        issued.append(token(exp=int(time.time()) + 2))
        return issued[-1]

    recoveries: list[Recovery] = []
    async with RelayClient(
        stack.base_url,
        token=short_token,
        on_recovery=joined_and_room_less(recoveries),
        reconnection_delay=0.1,
    ) as client:
        # When its token expires (the server disconnects it) and events keep coming
        send(sqs, stack.queue_url, [{"event": "e", "data": 0}])
        got = await take(client, 1)
        await eventually(lambda: len(issued) >= 2, timeout_s=20, what="a second token")
        send(sqs, stack.queue_url, [{"event": "e", "data": n} for n in (1, 2)])
        got += await take(client, 2)
        # Then it connected again with a new token and got every event once, in order
        assert [e.data for e in got] == [0, 1, 2]
        # (the connect's report may follow events replayed to it: a handler task each)
        await eventually(lambda: bool(recoveries), timeout_s=10, what="a recovery report")
        assert all(r.recovered for r in recoveries)
