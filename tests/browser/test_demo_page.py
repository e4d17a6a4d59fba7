"""The demo page in a real headless Chromium (Debian's, driven by Playwright), against real
processes: emulator, worker, server. A screenshot of each page is saved to test-artifacts/
when a test fails."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devtools.netcut import NetCut
from tests.conftest import REPORTS
from tests.integration.helpers import metric, send
from tests.processes import ROOT, Processes, Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# As the machine notes say: headless, no sandbox as root, and none of Chromium's background
# traffic (this machine has no network beyond the package registries).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: .ci/run installs Debian's chromium package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def open_page(
    browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[str], Awaitable[Page]]]:
    """Opens pages; on failure, screenshots each into test-artifacts/<test>-<n>.png."""
    pages: list[Page] = []

    async def open_(url: str) -> Page:
        page = await browser.new_page()
        await page.goto(url)
        pages.append(page)
        return page

    yield open_
    report = request.node.stash.get(REPORTS, {}).get("call")
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for n, page in enumerate(pages):
            path = ARTIFACTS / f"{request.node.name}-{n}.png"
            await page.screenshot(path=str(path), full_page=True)
            print(f"screenshot: {path}")


@pytest.fixture
def relay(processes: Processes, stack: Stack) -> Stack:
    processes.sqs(stack)
    # the test queue is not the embedded emulator's default one, so demo mode is asked for
    processes.server(stack, DEMO="1")
    processes.worker(stack)
    return stack


async def connected(page: Page) -> None:
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def test_an_event_sent_from_the_form_is_listed(
    relay: Stack, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    # Given the page, connected
    page = await open_page(relay.base_url)
    await connected(page)

    # When the form sends an event through SQS
    await page.fill("#send-event", "hello")
    await page.fill("#send-data", '{"from": "the form"}')
    await page.click("#send-button")

    # Then it is listed, with its MessageId, offset and data
    await expect(page.locator("#sent")).to_contain_text("sent ")
    message_id = (await page.locator("#sent").inner_text()).removeprefix("sent ")
    row = page.locator("#events tr", has_text=message_id)
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(0)).to_have_text("hello")
    await expect(row.locator("td").nth(3)).to_have_text("1")
    await expect(row.locator("td.data")).to_have_text('{"from":"the form"}')
    await expect(row.locator("td").nth(5)).to_contain_text(" ms")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "demo-page.png"), full_page=True)


async def test_an_item_removed_on_one_page_disappears_on_the_other(
    relay: Stack, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    # Given two open pages
    first, second = await open_page(relay.base_url), await open_page(relay.base_url)
    await connected(first)
    await connected(second)

    # When one adds an item (item_added goes through SQS to both)
    await first.fill("#item-name", "apples")
    await first.click("#item-add")
    for page in (first, second):
        await expect(page.locator("#items li", has_text="apples")).to_have_count(1)

    # And removes it there
    await first.locator("#items li", has_text="apples").get_by_role("button").click()

    # Then it disappears on the other page too (the relayed item_removed)
    await expect(first.locator("#items li")).to_have_count(0)
    await expect(second.locator("#items li")).to_have_count(0)


async def test_a_page_in_a_room_sees_its_rooms_events_only(
    relay: Stack, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    # Given the page, in room red
    page = await open_page(relay.base_url)
    await connected(page)
    await page.fill("#room", "red")
    await page.click("#join-button")
    await expect(page.locator("#rooms")).to_have_text("red")

    # When its form sends an event to room blue, one to room red and one to everybody
    for room, data in (("blue", '"for blue"'), ("red", '"for red"'), ("", '"for all"')):
        await page.fill("#send-room", room)
        await page.fill("#send-data", data)
        await page.click("#send-button")

    # Then, once the server has emitted all three and answered a later request of the page
    # (everything it sent the page before that answer has arrived by then), the page lists
    # red's and everybody's, and not blue's
    await relay.wait_counter("emitted", 3)
    await page.fill("#room", "barrier")
    await page.click("#join-button")
    await expect(page.locator("#rooms")).to_have_text("red, barrier")
    texts = await page.locator("#events td.data").all_inner_texts()
    assert sorted(texts) == ['"for all"', '"for red"']


async def test_a_page_that_was_offline_shows_what_it_missed_once_in_order_and_says_so(
    processes: Processes, stack: Stack, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    # Given the page (relay.js) in room shop, on a server that keeps 5 events per stream
    processes.sqs(stack)
    processes.server(stack, DEMO="1", REPLAY_MAX_EVENTS="5")
    processes.worker(stack)
    sqs = stack.sqs_client()
    page = await open_page(stack.base_url)
    await connected(page)
    await page.fill("#room", "shop")
    await page.click("#join-button")
    await expect(page.locator("#rooms")).to_have_text("shop")

    # When the browser goes offline, 2 shop events and 2 for everyone go through SQS,
    await page.context.set_offline(True)
    await expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    bodies: list[Any] = [{"event": "e", "data": f"shop {n}", "room": "shop"} for n in (1, 2)]
    bodies += [{"event": "e", "data": f"all {n}"} for n in (1, 2)]
    ids = send(sqs, stack.queue_url, bodies)
    await stack.wait_counter("emitted", 4)
    # and it comes back online
    await page.context.set_offline(False)

    # Then it shows each of them once, in order per stream, and says both streams recovered
    recovery = page.locator("#recovery")
    await expect(recovery).to_have_attribute("data-state", "recovered", timeout=30_000)
    await expect(recovery).to_contain_text("everyone: recovered 2 missed event(s)")
    await expect(recovery).to_contain_text("shop: recovered 2 missed event(s)")
    await expect(page.locator("#events tr")).to_have_count(4)
    rows = list(reversed(await page.locator("#events td.data").all_inner_texts()))
    assert [r for r in rows if "shop" in r] == ['"shop 1"', '"shop 2"']
    assert [r for r in rows if "all" in r] == ['"all 1"', '"all 2"']
    shown = await page.locator("#events tr td:nth-child(3)").all_inner_texts()
    assert sorted(shown) == sorted(ids)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "demo-page-recovered.png"), full_page=True)

    # When it goes offline again and misses more shop events than the server keeps
    await page.context.set_offline(True)
    await expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(7)])
    await stack.wait_counter("emitted", 11)
    await page.context.set_offline(False)

    # Then it says the shop stream must be resynced, and why
    await expect(recovery).to_have_attribute("data-state", "resync", timeout=30_000)
    await expect(recovery).to_contain_text(
        "shop: must resync (offset 2 is out of the replay window"
    )
    await expect(recovery).to_contain_text("everyone: recovered 0 missed event(s)")
    await expect(page.locator("#events tr")).to_have_count(4)


async def test_five_network_cuts_the_server_never_noticed_lose_and_repeat_nothing_on_the_page(
    relay: Stack, open_page: Callable[[str], Awaitable[Page]]
) -> None:
    # Given the page, reached through a network that can be cut, in room shop
    sqs = relay.sqs_client()
    async with NetCut(relay.http_port) as net:
        page = await open_page(net.url)
        await connected(page)
        await page.fill("#room", "shop")
        await page.click("#join-button")
        await expect(page.locator("#rooms")).to_have_text("shop")
        ids = send(sqs, relay.queue_url, [{"event": "e", "data": "first", "room": "shop"}])
        ids += send(sqs, relay.queue_url, [{"event": "e", "data": "first"}])
        await expect(page.locator("#events tr")).to_have_count(2)
        clients_before = metric(relay.base_url, "relay_connected_clients")

        # When the network is cut 5 times (the server sees no close, only silence), with
        # 2 shop events and 2 for everyone sent each time
        for cycle in range(5):
            net.cut()
            await expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
            bodies: list[Any] = [{"event": "e", "data": f"shop {cycle}.{n}", "room": "shop"}
                                 for n in (1, 2)]  # fmt: skip
            bodies += [{"event": "e", "data": f"all {cycle}.{n}"} for n in (1, 2)]
            ids += send(sqs, relay.queue_url, bodies)
            await relay.wait_counter("emitted", len(ids))
            net.restore()
            await expect(page.locator("#events tr")).to_have_count(len(ids), timeout=30_000)

        # Then the page shows every event once, in order per stream
        rooms = await page.locator("#events tr td:nth-child(2)").all_inner_texts()
        data = await page.locator("#events td.data").all_inner_texts()
        streams: dict[str, list[str]] = {}
        for room, text in reversed(list(zip(rooms, data, strict=True))):
            streams.setdefault(room, []).append(text.strip('"'))
        assert streams == {
            room: ["first"] + [f"{name} {c}.{n}" for c in range(5) for n in (1, 2)]
            for room, name in (("shop", "shop"), ("", "all"))
        }
        shown_ids = await page.locator("#events tr td:nth-child(3)").all_inner_texts()
        assert sorted(shown_ids) == sorted(ids)
        await expect(page.locator("#recovery")).to_have_text(
            "everyone: recovered 2 missed event(s); shop: recovered 2 missed event(s)"
        )
        # while the server still held all 5 cut connections: it had noticed none of them
        assert metric(relay.base_url, "relay_connected_clients") == clients_before + 5
