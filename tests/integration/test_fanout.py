"""The fan-out's direct writes keep every client kind whole (server/adapters/fanout.py): websocket,
long-polling, and a client that upgrades from one to the other while events flow each get
each of their events once, in their stream's order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import report, send, send_async
from tests.processes import Processes, Stack, healthz

EVENTS = 300  # two thirds to the room "a", a third to everyone


def bodies(numbers: range) -> list[dict[str, Any]]:
    return [{"event": "e", "data": {"n": n}, "room": "a" if n % 3 else None} for n in numbers]


async def client(stack: Stack, transports: list[str]) -> RecordingClient:
    recorder = await RecordingClient().connect(stack.base_url, transports=transports)
    assert (await recorder.sio.call("join", "a"))["ok"]
    return recorder


def check_streams(name: str, recorder: RecordingClient, expected: int) -> None:
    """Each event once; per stream (room), offsets that only go up by one."""
    events = [p for event, p in recorder.events if event == "e"]
    numbers = [p["data"]["n"] for p in events]
    assert len(numbers) == len(set(numbers)) == expected, f"{name}: {len(numbers)} events"
    offsets: dict[Any, list[int]] = defaultdict(list)
    for p in events:
        offsets[p["room"]].append(p["offset"])
    for room, seen in offsets.items():
        assert seen == list(range(seen[0], seen[0] + len(seen))), f"{name}, {room}: {seen}"


async def test_websocket_polling_and_upgrading_clients_each_get_every_event_once_in_order(
    processes: Processes, stack: Stack
) -> None:
    # Given a relay and a client on each transport, all in the room "a"
    processes.relay(stack)
    sqs = stack.sqs_client()
    steady = {
        "websocket": await client(stack, ["websocket"]),
        "polling": await client(stack, ["polling"]),
    }
    # When events flow while more clients connect by long-polling and upgrade to websocket
    sending = asyncio.create_task(send_async_batches(sqs, stack.queue_url, range(EVENTS)))
    upgrading = []
    for n in range(10):  # one every 20 events
        await steady["websocket"].wait_for(1 + 20 * n, timeout_s=60)
        upgrading.append(await client(stack, ["polling", "websocket"]))
    await sending
    # Then the steady clients get all of them, each once and in order per stream
    for name, recorder in steady.items():
        await recorder.wait_for(EVENTS, timeout_s=60)
        check_streams(name, recorder, EVENTS)
    # And each upgrading client, whatever it joined in the middle of, has no gap and no repeat
    last = steady["websocket"].events[-1][1]["data"]["n"]
    for recorder in upgrading:
        await eventually_has(recorder, last)
        events = [p for event, p in recorder.events if event == "e"]
        check_streams("upgrading", recorder, len(events))
        assert recorder.sio.transport() == "websocket"
    joined_midway = [len([1 for e, _ in r.events if e == "e"]) for r in upgrading]
    report("fan-out over every transport", events=EVENTS, upgrading_clients_got=joined_midway)
    assert len(set(joined_midway)) > 1  # (they joined at different points of the flow)
    for recorder in [*steady.values(), *upgrading]:
        await recorder.close()


async def send_async_batches(sqs: Any, queue_url: str, numbers: range) -> None:
    for first in range(numbers.start, numbers.stop, 10):
        await send_async(sqs, queue_url, bodies(range(first, min(first + 10, numbers.stop))))


async def eventually_has(recorder: RecordingClient, n: int, timeout_s: float = 60) -> None:
    """Wait until `recorder` got the event numbered `n` (the last one sent)."""

    async def arrived() -> None:
        while not any(e == "e" and p["data"]["n"] == n for e, p in recorder.events):
            await recorder.wait_for(len(recorder.events) + 1, timeout_s=timeout_s)

    await asyncio.wait_for(arrived(), timeout_s)


async def test_a_long_polling_python_client_takes_a_burst_larger_than_one_answer(
    processes: Processes, stack: Stack
) -> None:
    # Given 40 events in the room "a", and a stock python-socketio client on long-polling
    # (python-engineio's client drops a poll answer of more than 16 packets as a transport
    # error)
    processes.relay(stack)
    send(stack.sqs_client(), stack.queue_url, list(bodies(range(1, 120, 3)))[:40])
    await stack.wait_counter("emitted", 40)
    epoch = healthz(stack.base_url)["epoch"]
    recorder = await RecordingClient().connect(stack.base_url, transports=["polling"])
    # When it joins with a resume from the start: all 40 are queued for it at once
    answer = await recorder.call("join", {"room": "a", "since": {"epoch": epoch, "offset": 0}})
    # Then they reach it, over several answers, in order, and it stays connected
    assert answer["ok"] and answer["replayed"] == 40, answer
    await recorder.wait_for(40, timeout_s=30)
    assert [p["offset"] for p in recorder.of("e")] == list(range(1, 41))
    assert recorder.disconnects == [] and recorder.sio.transport() == "polling"
    await recorder.close()
