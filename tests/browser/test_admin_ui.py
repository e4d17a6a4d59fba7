"""The Socket.IO Admin UI (ADMIN_UI, docs/operations.md) in a real headless Chromium (Debian's,
driven by Playwright), served by the relay from its pinned copy of @socket.io/admin-ui, against
a real server with two real clients in rooms. A screenshot is saved to test-artifacts/ when a
test fails."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from tests.browser import test_demo_page as demo
from tests.clients import RecordingClient
from tests.integration.test_admin import ADMIN, ADMIN_PASSWORD, ADMIN_USERNAME
from tests.processes import Processes, Stack

ARTIFACTS = demo.ARTIFACTS
browser, open_page = demo.browser, demo.open_page  # the demo page's fixtures: Chromium, pages


@pytest.fixture
async def watched(processes: Processes, stack: Stack) -> AsyncIterator[list[RecordingClient]]:
    """A server with the Admin UI on (development mode: sockets and rooms listed), and two
    clients: one in room shop, one in shop and news."""
    processes.server(stack, **ADMIN, ADMIN_MODE="development")
    shop = await RecordingClient().connect(stack.base_url)
    both = await RecordingClient().connect(stack.base_url)
    assert (await shop.call("join", "shop"))["ok"]
    for room in ("shop", "news"):
        assert (await both.call("join", room))["ok"]
    yield [shop, both]
    for client in (shop, both):
        await client.close()


async def log_in(page: Page, base_url: str, password: str) -> None:
    await page.get_by_label("Server URL").fill(base_url)
    await page.get_by_label("Username").fill(ADMIN_USERNAME)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Connect").click()


async def test_the_admin_ui_lists_the_connected_clients_their_rooms_and_transports(
    stack: Stack,
    watched: list[RecordingClient],
    open_page: Callable[[str], Awaitable[Page]],
) -> None:
    shop, both = watched
    # Given the Admin UI, opened from the relay itself (every request it makes is recorded)
    hosts: set[str] = set()
    page = await open_page(stack.base_url + "/admin-ui/")
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

    # When the operator logs in with the Admin UI's credentials
    await log_in(page, stack.base_url, ADMIN_PASSWORD)
    await expect(page.get_by_role("banner")).to_contain_text(re.compile(r"Status:\s*connected"))

    # Then the dashboard counts the clients on '/', and the Sockets page lists both clients
    # on websocket
    await page.get_by_role("link", name="Sockets").click()
    for client in (shop, both):
        row = page.locator("tbody tr", has_text=client.sio.get_sid("/"))
        await expect(row).to_have_count(1)
        await expect(row.locator("td").nth(2)).to_have_text("WebSocket")

    # And the Rooms page lists room shop with two sockets and news with one
    await page.get_by_role("link", name="Rooms").click()
    for room, sockets in (("shop", "2"), ("news", "1")):
        row = page.locator("tbody tr").filter(has=page.get_by_role("cell", name=room, exact=True))
        await expect(row.locator("td").nth(2)).to_have_text(sockets)

    # And a socket's own page shows its transport and its rooms
    await page.get_by_role("link", name="Sockets").click()
    await page.locator("tbody tr", has_text=both.sio.get_sid("/")).click()
    await expect(page.locator("main")).to_contain_text("Socket details")
    rooms = page.locator("main table").last  # the socket page's last table: its rooms
    for room in ("shop", "news", both.sio.get_sid("/")):
        await expect(rooms.get_by_role("cell", name=room, exact=True)).to_have_count(1)
    other = shop.sio.get_sid("/")  # the other client's own room is not this socket's
    await expect(rooms.get_by_role("cell", name=other, exact=True)).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "admin-ui.png"), full_page=True)

    # And nothing was loaded from anywhere but the relay (no CDN)
    assert hosts == {urlsplit(stack.base_url).netloc}


async def test_a_wrong_admin_password_is_refused_in_the_admin_ui(
    stack: Stack,
    watched: list[RecordingClient],
    open_page: Callable[[str], Awaitable[Page]],
) -> None:
    # Given the Admin UI
    page = await open_page(stack.base_url + "/admin-ui/")

    # When the operator logs in with a wrong password
    await log_in(page, stack.base_url, "not-the-password-at-all")

    # Then the server refuses it: the UI says so and stays disconnected, listing no socket
    await expect(page.get_by_text("authentication failed")).to_be_visible()
    await expect(page.get_by_role("banner")).to_contain_text(re.compile(r"Status:\s*disconnected"))
