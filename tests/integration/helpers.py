"""Helpers for integration tests: real boto3 calls against the emulator, waiting on real
processes, and printing the figures each test measured (run with -s)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from producer import send_bodies
from shared.envelope import ENVELOPE_KEYS, Envelope
from tests.clients import RecordingClient
from tests.processes import PYTHON, ROOT, Process, Stack, healthz, wait_until

#: The settings' default SHUTDOWN_TIMEOUT_S.
SHUTDOWN_TIMEOUT_S = 4.0
#: How long a stop is measured past any bound, so that a slow stop is measured, not cut off.
MEASURE_S = 15.0


def attributes(sqs: Any, queue_url: str) -> dict[str, int]:
    values = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(values["ApproximateNumberOfMessages"]),
        "invisible": int(values["ApproximateNumberOfMessagesNotVisible"]),
    }


def queue_depth(sqs: Any, queue_url: str) -> int:
    return sum(attributes(sqs, queue_url).values())


def send(sqs: Any, queue_url: str, bodies: list[Any], *, raw: bool = False) -> list[str]:
    """Send bodies in batches of 10, as the producer does; return their MessageIds in order.

    An envelope (a dict with an "event" key and no key beyond the envelope's) is encoded by
    `Envelope.to_body`, any other value is JSON-encoded as it is, and `raw` bodies (strings)
    go as they are."""
    return send_bodies(sqs, queue_url, bodies if raw else [_body(b) for b in bodies])


def _body(value: Any) -> str:
    if isinstance(value, dict) and "event" in value and value.keys() <= ENVELOPE_KEYS:
        return Envelope(**({"data": None} | value)).to_body()
    return json.dumps(value)


async def send_async(sqs: Any, queue_url: str, bodies: list[Any]) -> list[str]:
    """`send` in a thread, so that clients keep receiving while it runs."""
    return await asyncio.to_thread(send, sqs, queue_url, bodies)


def wait_queue_empty(sqs: Any, queue_url: str, timeout_s: float = 60) -> None:
    wait_until(lambda: queue_depth(sqs, queue_url) == 0, timeout_s=timeout_s, what="an empty queue")


async def wait_queue_empty_async(sqs: Any, queue_url: str, timeout_s: float = 60) -> None:
    await asyncio.to_thread(wait_queue_empty, sqs, queue_url, timeout_s)


def run_producer(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m producer args...` (the command sqs-relay-publish) against `stack`'s queue, as a
    person runs it."""
    return subprocess.run(
        [PYTHON, "-m", "producer", *args],
        env=stack.env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def json_lines_until(
    stream: asyncio.StreamReader,
    done: Callable[[list[Any]], Any],
    seen: list[Any] | None = None,
    timeout_s: float = 30,
) -> list[Any]:
    """Read a listener process's JSON lines into `seen` (a new list if None) until
    `done(seen)`; return `seen`. Fails saying what it read if the process ends or the time is
    up first."""
    seen = [] if seen is None else seen

    async def read() -> None:
        while not done(seen):
            line = await stream.readline()
            assert line, f"the listener ended; it said {seen}"
            seen.append(json.loads(line))

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"the listener said only {seen}") from None
    return seen


def report(name: str, **figures: object) -> None:
    """One line of what a test measured, for the issue notes (pytest -s shows it)."""
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items()))


def tally(ids: list[str], counts: Counter[str]) -> dict[str, int]:
    """What became of the messages sent (`ids`), from how often each id was received."""
    return {
        "sent": len(ids),
        "delivered": len(set(counts) & set(ids)),
        "lost": len(set(ids) - set(counts)),
        "duplicated": sum(c - 1 for c in counts.values()),
    }


async def wait_log(process: Process, text: str, timeout_s: float = 30, after: int = 0) -> None:
    """Wait until `process` logs `text` (past the first `after` characters of its log)."""
    await asyncio.to_thread(
        wait_until,
        lambda: text in process.log()[after:],
        timeout_s=timeout_s,
        what=f"{process.name} to log {text!r}",
    )


async def sigterm_together(*targets: Process) -> list[tuple[int | None, float]]:
    """SIGTERM to every target at once (as honcho sends it); wait for all concurrently.

    Returns each one's (exit code, seconds from the common signal to its exit); a process
    still running MEASURE_S after the signal reads (None, MEASURE_S) and is then killed."""
    started = time.monotonic()
    for process in targets:
        process.send_signal(signal.SIGTERM)

    def exited(process: Process) -> tuple[int | None, float]:
        try:
            code: int | None = process.popen.wait(MEASURE_S - (time.monotonic() - started))
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - started
        process.stop(signal.SIGKILL, timeout_s=5)  # reaps it (and kills what is left)
        return code, seconds

    return list(await asyncio.gather(*(asyncio.to_thread(exited, p) for p in targets)))


def rss_kib(process: Process) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def wait_recovery(client: RecordingClient) -> dict[str, Any]:
    """The `relay:recovery` event a client that connected with `since` receives."""
    while not client.of("relay:recovery"):
        await client.wait_for(len(client.events) + 1)
    [recovery] = client.of("relay:recovery")
    return dict(recovery)


async def replay_of_this_epoch(stack: Stack) -> RecordingClient:
    """A new client that has the (restarted) server replay all it emitted in its epoch."""
    epoch = healthz(stack.base_url)["epoch"]
    client = await RecordingClient().connect(
        stack.base_url, auth={"since": {"epoch": epoch, "offset": 0}}
    )
    await asyncio.wait_for(wait_recovery(client), 10)
    return client


async def eventually(
    predicate: Callable[[], bool], *, timeout_s: float = 30, what: str = "a condition"
) -> None:
    """Poll `predicate` on the event loop (so clients on it keep receiving) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)  # a polling interval, not a synchronisation


def metric(base_url: str, name: str) -> float:
    """One sample of the server's /metrics (a metric without labels)."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def relays_one_event(stack: Stack) -> None:
    """A client connected to `stack`'s server receives an event sent through SQS, and the
    worker deleted it once the server had it."""
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    [message_id] = await send_async(sqs, stack.queue_url, [{"event": "order", "data": {"id": 7}}])
    [(event, payload)] = await client.wait_for(1)
    assert (event, payload["id"], payload["data"]) == ("order", message_id, {"id": 7})
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.close()
