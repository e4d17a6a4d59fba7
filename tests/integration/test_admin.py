"""The Socket.IO Admin UI's server side (ADMIN_UI, docs/operations.md) on real processes: its
namespace opens to its own credentials only, it refuses to start without them, and the
relay's fan-out keeps working under python-socketio's instrumentation."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
import socketio

from tests.clients import RecordingClient
from tests.integration.helpers import send
from tests.processes import PYTHON, ROOT, Processes, Stack, healthz
from tests.tokens import token

ADMIN_USERNAME = "ops"
ADMIN_PASSWORD = "a-password-of-24-chars!!"
ADMIN = {
    "ADMIN_UI": "1",
    "ADMIN_USERNAME": ADMIN_USERNAME,
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
}
CREDENTIALS = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}


class AdminClient:
    """What the Admin UI's page does: a socket.io client on /admin that records what the
    instrumentation sends it."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.errors: list[Any] = []
        self._changed = asyncio.Event()

        async def record(event: str, *args: Any) -> None:
            self.events.append((event, args))
            self._changed.set()

        self.sio.on("*", handler=record, namespace="/admin")
        self.sio.on("connect_error", handler=self.errors.append, namespace="/admin")

    async def connect(self, url: str, auth: Any) -> None:
        await self.sio.connect(url, namespaces=["/admin"], auth=auth, wait_timeout=10)

    async def wait(self, event: str, ok: Any = lambda _args: True, timeout_s: float = 15) -> Any:
        """The first `event` whose arguments `ok` accepts."""

        async def found() -> Any:
            while True:
                for name, args in self.events:
                    if name == event and ok(args):
                        return args
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(found(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no {event} in {timeout_s} s: {self.events[-5:]!r}") from None


async def refused_on_admin(url: str, auth: Any) -> list[Any]:
    """Connect to /admin with `auth`, expect a refusal; the connect_error data."""
    client = AdminClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, auth)
    await client.sio.disconnect()
    return client.errors


async def test_a_client_token_cannot_open_the_admin_namespace_only_its_credentials_can(
    processes: Processes, stack: Stack
) -> None:
    # Given a server with the Admin UI on
    processes.server(stack, **ADMIN)
    refused_before = healthz(stack.base_url)["counters"].get("connect_refused", 0)

    # When a client connects to /admin with a valid token for every namespace, or with the
    # right user name and a wrong password
    with_token = await refused_on_admin(stack.base_url, {"token": token()})
    wrong_password = await refused_on_admin(
        stack.base_url, {"username": ADMIN_USERNAME, "password": "x" * 24}
    )

    # Then both are refused by the Admin UI's check, not by the relay's client sessions (which
    # would say "authentication required" and count a refusal)
    assert with_token == [{"message": "authentication failed"}]
    assert wrong_password == [{"message": "authentication failed"}]
    assert healthz(stack.base_url)["counters"].get("connect_refused", 0) == refused_before

    # And the credentials open it, read-only (no emit, join, leave or disconnect offered)
    admin = AdminClient()
    await admin.connect(stack.base_url, CREDENTIALS)
    (config,) = await admin.wait("config")
    assert config == {"supportedFeatures": ["AGGREGATED_EVENTS"]}
    await admin.sio.disconnect()
    # and a client token still opens '/'
    client = await RecordingClient().connect(stack.base_url)
    await client.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ADMIN_UI": "1"}, ["ADMIN_USERNAME: required", "ADMIN_PASSWORD: required"]),
        (
            {"ADMIN_UI": "1", "ADMIN_USERNAME": "ops", "ADMIN_PASSWORD": "too-short-secret"[:15]},
            ["ADMIN_PASSWORD: must be at least 16 characters"],
        ),
    ],
    ids=["no credentials", "short password"],
)
def test_the_admin_ui_on_without_its_credentials_refuses_to_start_naming_the_variable(
    stack: Stack, env: dict[str, str], named: list[str]
) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "server"],
        env=stack.env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    for text in named:
        assert text in done.stderr
    assert "too-short-secr" not in done.stderr  # a password is never echoed


@pytest.mark.parametrize("mode", ["production", "development"])
async def test_events_still_reach_the_clients_of_each_room_with_the_admin_ui_watching(
    processes: Processes, stack: Stack, mode: str
) -> None:
    # Given the relay with the Admin UI on, an admin watching, and two clients in rooms
    processes.sqs(stack)
    processes.server(stack, **ADMIN, ADMIN_MODE=mode)
    processes.worker(stack)
    admin = AdminClient()
    await admin.connect(stack.base_url, CREDENTIALS)
    shop = await RecordingClient().connect(stack.base_url)
    both = await RecordingClient().connect(stack.base_url)
    assert (await shop.call("join", "shop"))["ok"]
    for room in ("shop", "news"):
        assert (await both.call("join", room))["ok"]

    # When events go through SQS to each room
    ids = send(
        stack.sqs_client(),
        stack.queue_url,
        [
            {"event": "sale", "data": 1, "room": "shop"},
            {"event": "story", "data": 2, "room": "news"},
        ],
    )

    # Then each client gets its rooms' events (the fan-out keeps working under instrument())
    await shop.wait_for(1)
    await both.wait_for(2)
    assert shop.ids() == ids[:1]
    assert sorted(both.ids()) == sorted(ids)

    # And the admin sees the server: its clients (three: the admin too) and the sockets on '/'
    stats = await admin.wait("server_stats", lambda args: args[0]["clientsCount"] == 3)
    namespaces = {n["name"]: n["socketsCount"] for n in stats[0]["namespaces"]}
    assert namespaces == {"/": 2, "/admin": 1}
    if mode == "development":
        # and, in development mode only, every event sent, to each recipient
        await admin.wait("event_sent", lambda args: args[2][0] == "story")
        sent = [args for name, args in admin.events if name == "event_sent"]
        recipients = {(args[2][0], args[1]) for args in sent if args[2][0] in ("sale", "story")}
        shop_sid, both_sid = shop.sio.get_sid("/"), both.sio.get_sid("/")
        assert recipients == {("sale", shop_sid), ("sale", both_sid), ("story", both_sid)}
    else:
        assert not [name for name, _ in admin.events if name == "event_sent"]
    for client in (shop, both):
        await client.close()
    await admin.sio.disconnect()
