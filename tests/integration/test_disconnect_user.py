"""A backend disconnects a user (``relay:disconnect`` through SQS, after a logout or a ban):
every connection of that user, on every server, is told why and closed; the user's older
tokens are refused for a while; and neither helper reconnects by itself after it. One server,
then cluster mode (two servers behind nginx with Redis), then the Python and JS helpers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqs_relay_client import RelayClient

from tests.client.test_relay_js_user_streams import NODE, STATIC
from tests.clients import RecordingClient
from tests.integration.helpers import (
    eventually,
    json_lines_until,
    metric,
    run_producer,
    send_async,
)
from tests.integration.test_users import TwoServers, connect_via, two_servers
from tests.processes import Processes, Stack, healthz
from tests.tokens import token

__all__ = ["two_servers"]  # the cluster fixture, shared with test_users

pytestmark = pytest.mark.timeout(120)

REVOKED = "token revoked: reconnect with a new token"


def old_token(sub: str) -> str:
    """A token issued before any disconnect command of this test."""
    return token(sub=sub, iat=int(time.time()) - 10)


async def connect(url: str, auth_token: str) -> RecordingClient:
    client = RecordingClient()
    await client.sio.connect(url, auth={"token": auth_token}, wait_timeout=10)
    return client


async def refusal(url: str, auth_token: str) -> str:
    """Connect and expect a refusal; return the reason the server gave."""
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    client.on("connect_error", handler=reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, auth={"token": auth_token}, wait_timeout=10)
    await client.disconnect()
    return str(reasons)


async def disconnect(stack: Stack, *args: str) -> None:
    """`python -m producer --disconnect ...`, as a backend's operator runs it."""
    done = await asyncio.to_thread(run_producer, stack, *args)
    assert done.returncode == 0, done.stderr


def closed_with(client: RecordingClient, reason: str) -> bool:
    return client.of("relay:disconnected") == [{"reason": reason}] and bool(client.disconnects)


async def test_one_server_closes_each_connection_of_the_user_with_the_reason_and_refuses_old_token(
    processes: Processes, stack: Stack
) -> None:
    # Given alice on two connections and bob on one
    processes.relay(stack)
    alice_token = old_token("alice")
    alices = [await connect(stack.base_url, alice_token) for _ in range(2)]
    bob = await connect(stack.base_url, old_token("bob"))

    # When the backend disconnects alice with the producer's command line
    await disconnect(stack, "--disconnect", "alice", "--reason", "logged out")

    # Then both her connections are told why, then closed by the server
    for client in alices:
        await eventually(lambda c=client: closed_with(c, "logged out"), what="alice closed")
        assert client.disconnects == [socketio.AsyncClient.reason.SERVER_DISCONNECT]
        assert not client.sio.connected
    counters = healthz(stack.base_url)["counters"]
    assert (counters["disconnect_commands"], counters["users_disconnected"]) == (1, 2)
    # and bob is still connected, and gets an event sent after it
    assert bob.sio.connected and bob.disconnects == []
    await send_async(stack.sqs_client(), stack.queue_url, [{"event": "dm", "user": "bob"}])
    await eventually(lambda: bool(bob.of("dm")), what="bob's event")
    assert bob.of("relay:disconnected") == []

    # And alice's old token is refused, with the reason; a token issued after the command is not
    assert REVOKED in await refusal(stack.base_url, alice_token)
    again = await connect(stack.base_url, token(sub="alice"))
    assert again.sio.connected
    # (the command never entered the history: nothing but bob's event was emitted)
    assert healthz(stack.base_url)["counters"]["emitted"] == 1
    for client in (bob, again):
        await client.close()


async def test_in_cluster_mode_a_users_connections_on_both_servers_are_closed_and_her_token_refused(
    two_servers: TwoServers,
) -> None:
    # Given alice's devices connected through nginx until both servers hold one, and bob
    cluster = two_servers
    alice_token = old_token("alice")
    devices: list[RecordingClient] = []
    where: list[int] = []
    for n in range(16):  # each lands on either server: 16 on one alone is a 1 in 32,768 chance
        before = cluster.connected()
        client = RecordingClient()
        await client.sio.connect(
            f"{cluster.url}?affinity=alice-{n}", auth={"token": alice_token}, wait_timeout=10
        )
        devices.append(client)
        after = cluster.connected()
        [port] = [p for p in after if after[p] > before[p]]
        where.append(port)
        if len(set(where)) == 2:
            break
    assert set(where) == set(cluster.servers), where
    bob = await connect_via(cluster.url, "bob", "bob")

    # When the backend disconnects alice (the worker hands it to one of the servers)
    await disconnect(cluster.stack, "--disconnect", "alice", "--reason", "banned")

    # Then every device of hers, on both servers, is told why and closed; bob is not
    for device in devices:
        await eventually(lambda d=device: closed_with(d, "banned"), what="alice's device closed")
    assert bob.sio.connected and bob.of("relay:disconnected") == []
    closed = {
        port: healthz(f"http://127.0.0.1:{port}")["counters"].get("users_disconnected", 0)
        for port in cluster.servers
    }
    assert sum(closed.values()) == len(devices) and all(closed.values()), closed
    # And her old token is refused on either server (the revocation is in Redis)
    for port in cluster.servers:
        assert REVOKED in await refusal(f"http://127.0.0.1:{port}", alice_token)
    for client in (*devices, bob):
        await client.close()


# --- the helpers ---------------------------------------------------------------------------------
async def test_the_python_helper_reports_the_reason_ends_and_does_not_reconnect(
    processes: Processes, stack: Stack
) -> None:
    # Given the Python helper as alice, reconnecting at once after any server disconnect, its
    # token function counting the connects it starts
    processes.relay(stack)
    alice_token = old_token("alice")
    asked: list[int] = []
    reasons: list[str] = []

    def get_token() -> str:
        asked.append(1)
        return alice_token

    relay = RelayClient(
        stack.base_url,
        token=get_token,
        on_disconnected=reasons.append,
        reconnection_delay=0,
        reconnection_delay_max=0.1,
    )
    await relay.connect()
    assert relay.connected and asked == [1]

    # When the backend disconnects alice
    await disconnect(stack, "--disconnect", "alice", "--reason", "logged out")

    # Then the app is told the reason, and the server's close reaches the helper
    await eventually(lambda: bool(reasons) and not relay.sio.connected, what="the close")
    assert (reasons, relay.disconnected) == (["logged out"], "logged out")
    # and it does not connect again: a later client's connect completes, and by then the
    # helper asked for no new token, and the server refused none and holds carol alone
    carol = await connect(stack.base_url, token(sub="carol"))
    assert asked == [1] and not relay.connected
    assert metric(stack.base_url, "relay_connected_clients") == 1
    assert healthz(stack.base_url)["counters"].get("connect_refused", 0) == 0
    # and its iteration has ended
    assert await asyncio.wait_for(_all(relay), 10) == []
    await relay.close()
    await carol.close()


async def _all(relay: RelayClient) -> list[Any]:
    return [event async for event in relay]


# `node listener.mjs STATIC URL TOKEN`: relay.js as alice (a static token: a reconnect would be
# refused, and reported as "refused"); once it is closed, after twice its own reconnect delay
# (250 ms), a second relay.js client (carol) connects. Prints what happens as JSON lines.
LISTENER = """
import { pathToFileURL } from "node:url";
const [staticDir, url, token, carolToken] = process.argv.slice(2);
const vendor = await import(pathToFileURL(`${staticDir}/vendor/socket.io-4.8.1.esm.min.js`).href);
const { connect } = await import(pathToFileURL(`${staticDir}/relay.js`).href);
const say = (fields) => console.log(JSON.stringify(fields));
const options = {
  transports: [vendor.WebSocket], reconnectionDelay: 100, reconnectionDelayMax: 200,
};
const alice = connect(url, { token, ...options });
let carol = null;
alice.on("status", ({ state, detail }) => {
  say({ who: "alice", status: state, detail, disconnected: alice.disconnected });
  if (state === "closed") setTimeout(() => {
    carol = connect(url, { token: carolToken, ...options });
    carol.on("status", ({ state }) => say({ who: "carol", status: state }));
  }, 500);
});
process.stdin.on("end", () => { alice.close(); carol?.close(); });
process.stdin.resume();
"""


async def test_relay_js_reports_closed_with_the_reason_and_does_not_reconnect(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given relay.js as alice
    processes.relay(stack)
    script = tmp_path / "listener.mjs"
    script.write_text(LISTENER)
    listener = await asyncio.create_subprocess_exec(
        NODE, script, STATIC, stack.base_url, old_token("alice"), token(sub="carol"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert listener.stdin is not None and listener.stdout is not None
    seen: list[dict[str, Any]] = []
    try:
        await json_lines_until(listener.stdout, seen=seen, done=lambda s: len(s) == 1)
        assert seen[0]["status"] == "connected"

        # When the backend disconnects alice
        await disconnect(stack, "--disconnect", "alice", "--reason", "logged out")

        # Then relay.js reports "closed" with the reason and keeps it
        await json_lines_until(
            listener.stdout, seen=seen, done=lambda s: s[-1].get("who") == "carol"
        )
        alice = [s for s in seen if s["who"] == "alice"]
        assert alice[1] == {
            "who": "alice", "status": "closed", "detail": "logged out", "disconnected": "logged out"
        }  # fmt: skip
        # and once a later client connected (after relay.js's own reconnect delay), alice
        # did not connect again, nor try: the server holds carol alone and refused nobody
        assert seen[-1] == {"who": "carol", "status": "connected"}
        assert [s["status"] for s in alice] == ["connected", "closed", "disconnected"]
        assert metric(stack.base_url, "relay_connected_clients") == 1
        assert healthz(stack.base_url)["counters"].get("connect_refused", 0) == 0
        listener.stdin.close()
        assert await asyncio.wait_for(listener.wait(), 10) == 0
    finally:
        if listener.returncode is None:
            listener.kill()
            await listener.wait()
