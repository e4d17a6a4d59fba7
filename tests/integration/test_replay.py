"""Replay on reconnect through the whole path: offsets, epoch, window, "recovery failed"."""

from __future__ import annotations

from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import send
from tests.processes import Processes, Stack, healthz


def offsets(client: RecordingClient, event: str = "e") -> list[tuple[str | None, int]]:
    return [(p["room"], p["offset"]) for p in client.of(event)]


async def test_a_client_that_reconnects_gets_what_it_missed_in_order_then_live_events(
    processes: Processes, stack: Stack
) -> None:
    # Given a client in room shop that saw 3 shop events and 2 broadcasts
    processes.relay(stack)
    sqs = stack.sqs_client()
    first = await RecordingClient().connect(stack.base_url)
    assert (await first.call("join", "shop"))["ok"]
    send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(3)])
    send(sqs, stack.queue_url, [{"event": "e", "data": n} for n in range(2)])
    await first.wait_for(5)
    epoch = first.events[0][1]["epoch"]
    last = {room: max(o for r, o in offsets(first) if r == room) for room in ("shop", None)}
    assert last == {"shop": 3, None: 2}
    await first.close()

    # When 4 shop events and 2 broadcasts go out while it is away, and it comes back
    send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(4)])
    send(sqs, stack.queue_url, [{"event": "e", "data": n} for n in range(2)])
    await stack.wait_counter("emitted", 11)
    again = await RecordingClient().connect(
        stack.base_url, auth={"since": {"epoch": epoch, "offset": last[None]}}
    )
    answer = await again.call("join", {"room": "shop", "since": {"epoch": epoch, "offset": 3}})

    # Then it gets the missed broadcasts (before its connect completed) and a recovery note,
    position = {"epoch": epoch, "offset": 7}  # the stream's last event as it entered
    assert answer == {"ok": True, "room": "shop", "recovered": True, "replayed": 4} | position
    [recovery] = again.of("relay:recovery")
    assert recovery == {"room": None, "recovered": True, "replayed": 2, "epoch": epoch, "offset": 4}
    # the missed shop events in order, and then live events continue the offsets
    send(sqs, stack.queue_url, [{"event": "e", "data": "live", "room": "shop"}])
    send(sqs, stack.queue_url, [{"event": "e", "data": "live"}])
    await again.wait_for(9)
    assert [o for r, o in offsets(again) if r is None] == [3, 4, 5]
    assert [o for r, o in offsets(again) if r == "shop"] == [4, 5, 6, 7, 8]
    assert healthz(stack.base_url)["counters"]["replayed"] == 6
    await again.close()


async def test_recovery_fails_clearly_out_of_the_window_or_from_another_epoch(
    processes: Processes, stack: Stack
) -> None:
    # Given a server that keeps only 2 events per stream
    processes.sqs(stack)
    processes.server(stack, REPLAY_MAX_EVENTS="2")
    processes.worker(stack)
    sqs = stack.sqs_client()
    send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(5)])
    await stack.wait_counter("emitted", 5)
    epoch = healthz(stack.base_url)["epoch"]

    client = await RecordingClient().connect(stack.base_url)
    answers: list[Any] = [
        # an offset older than the window
        await client.call("join", {"room": "shop", "since": {"epoch": epoch, "offset": 1}}),
        # the epoch of another server run
        await client.call(
            "join", {"room": "shop", "since": {"epoch": "0123456789ab", "offset": 4}}
        ),
        # within the window: fine
        await client.call("join", {"room": "shop", "since": {"epoch": epoch, "offset": 3}}),
    ]
    assert answers[0]["recovered"] is False and answers[0]["offset"] == 5
    assert "out of the replay window (oldest kept is 4)" in answers[0]["reason"]
    assert answers[1]["recovered"] is False and "restarted" in answers[1]["reason"]
    assert answers[2] == {
        "ok": True, "room": "shop", "recovered": True, "replayed": 2, "epoch": epoch, "offset": 5
    }  # fmt: skip
    assert healthz(stack.base_url)["counters"]["recovery_failed"] == 2
    await client.close()
