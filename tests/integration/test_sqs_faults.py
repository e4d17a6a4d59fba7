"""The worker against an SQS that fails the ways SQS does (issue 30, part 1): throttling,
500s, answers slower than the read timeout, connections reset in the middle of a receive, a
delete or a return. Real moto behind devtools/sqsfaults.py's proxy, a real server and
worker, a real client.

For each fault: every event sent during it reaches the client exactly once (the server drops
redelivered duplicates), the worker's calls per second while SQS fails stay bounded, /readyz
says what is wrong meanwhile, and the worker recovers by itself once the fault is lifted.
The figures are printed (run with -s) for the issue notes and docs/operations.md.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from devtools.sqsfaults import Kind, SqsFaults
from shared.settings import load_settings
from shared.sqs import make_sqs_client
from tests.clients import RecordingClient
from tests.integration.helpers import (
    eventually,
    report,
    send_async,
    wait_queue_empty_async,
)
from tests.processes import Process, Processes, Stack, free_port, healthz

#: Short long polls, quick redelivery: SQS_WAIT_S=1 makes the read timeout 11 s.
FAST = {"SQS_WAIT_S": "1", "SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}
EVENTS = 10
#: A generous bound on the worker's calls per second while SQS fails (it makes about 1-3).
MAX_CALLS_PER_S = 20.0
#: From the fault's end to the worker's next successful call: its longest backoff (10 s)
#: plus botocore's own retries, with room to spare.
RECOVER_S = 15.0
OUTAGE_LOG = "retrying with backoff, and logging again when SQS answers"


def worker_endpoint(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


async def wait_readyz(port: int, status: int, timeout_s: float = 30) -> tuple[float, list[str]]:
    """Poll the worker's /readyz until it answers `status`; (when, its reasons)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            code, body = await asyncio.to_thread(worker_endpoint, port, "/readyz")
        except urllib.error.URLError as exc:  # the worker is still starting
            code, body = 0, {"reasons": [str(exc)]}
        if code == status:
            return time.monotonic(), body["reasons"]
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz still {code} {body} after {timeout_s} s")
        await asyncio.sleep(0.02)  # a polling interval, not a synchronisation


@dataclass
class Relay:
    stack: Stack
    proxy: SqsFaults
    worker: Process
    server: Process
    metrics_port: int
    client: RecordingClient

    def sqs_errors(self) -> dict[str, int]:
        _code, body = worker_endpoint(self.metrics_port, "/healthz")
        counters: dict[str, int] = body["counters"]
        return {
            name.split("[")[1].rstrip("]"): value
            for name, value in counters.items()
            if name.startswith("sqs_errors[")
        }


@asynccontextmanager
async def relay_behind_faults(
    processes: Processes, stack: Stack, **settings: str
) -> AsyncIterator[Relay]:
    """moto, a server, and a worker that reaches moto through the fault proxy; ready."""
    stack.extra.update(FAST | settings)
    processes.sqs(stack)
    server = processes.server(stack)
    async with SqsFaults(stack.sqs_port) as proxy:
        port = free_port()
        worker = processes.worker(
            stack, SQS_QUEUE_URL=proxy.queue_url(stack.queue_url), METRICS_PORT=str(port)
        )
        await wait_readyz(port, 200)
        client = await RecordingClient().connect(stack.base_url)
        try:
            yield Relay(stack, proxy, worker, server, port, client)
        finally:
            await client.close()


@dataclass
class Outage:
    reasons: list[str]  # what /readyz said during it
    calls_per_s: float  # every SQS call the worker made while it lasted
    seconds: float
    recover_s: float  # from the lift to /readyz's 200
    lifted_at: float  # time.time() of the lift

    def figures(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "lifted_at"}


async def outage(
    relay: Relay,
    action: str,
    kind: Kind,
    *,
    faulted: int,
    says: str,
    on_lift: Callable[[], object] = lambda: None,
) -> Outage:
    """Inject `kind` into `action`, send the events, and lift the fault once /readyz said
    `says` and the proxy failed `faulted` calls (calling `on_lift` then); then wait for
    /readyz's 200."""
    proxy = relay.proxy
    started = time.monotonic()
    proxy.inject(action, kind)
    sending = asyncio.create_task(
        send_async(
            relay.stack.sqs_client(),
            relay.stack.queue_url,
            [{"event": "n", "data": n} for n in range(EVENTS)],
        )
    )
    _when, reasons = await wait_readyz(relay.metrics_port, 503)
    await eventually(
        lambda: proxy.faulted(action) >= faulted,
        timeout_s=45,  # a loaded machine: the hand-off, an ack timeout, then the calls
        what=f"{faulted} failed {action} calls",
    )
    code, body = await asyncio.to_thread(worker_endpoint, relay.metrics_port, "/readyz")
    if code == 503:  # the latest words, rather than the outage's first
        reasons = body["reasons"]
    lifted, lifted_at = time.monotonic(), time.time()
    proxy.lift()
    on_lift()
    ready_at, _ = await wait_readyz(relay.metrics_port, 200, timeout_s=RECOVER_S + 5)
    await sending
    assert any(says in reason for reason in reasons), reasons
    return Outage(
        reasons=reasons,
        calls_per_s=round(proxy.rate(None, started, lifted), 2),
        seconds=round(lifted - started, 2),
        recover_s=round(ready_at - lifted, 2),
        lifted_at=lifted_at,
    )


async def delivered_exactly_once(relay: Relay, outage: Outage) -> dict[str, object]:
    """Every event reached the client once, after the queue emptied: what happened to them."""
    await relay.client.wait_for(EVENTS, timeout_s=30)
    last_at = relay.client.received_at[EVENTS - 1]
    await wait_queue_empty_async(relay.stack.sqs_client(), relay.stack.queue_url, timeout_s=30)
    await relay.client.call("join", "barrier")  # anything emitted before now has arrived
    counts = Counter(relay.client.ids())
    assert len(counts) == EVENTS, counts
    assert max(counts.values()) == 1, counts
    return {
        "events_lost": EVENTS - len(counts),
        "duplicates_seen_by_client": sum(counts.values()) - len(counts),
        "duplicate_dropped": healthz(relay.stack.base_url)["counters"].get("duplicate_dropped", 0),
        # 0: all were delivered before the fault was lifted
        "all_delivered_after_lift_s": round(max(0.0, last_at - outage.lifted_at), 2),
    }


def outage_logs(worker: Process) -> tuple[int, int]:
    log = worker.log()
    return log.count(OUTAGE_LOG), log.count("SQS answers again after")


# --- the proxy's errors are AWS's, to botocore ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "throttling"),
    [("throttle", "RequestThrottled", True), ("error500", "InternalError", False)],
)
async def test_the_proxys_errors_are_retried_by_botocores_standard_mode_as_awss_are(
    processes: Processes, stack: Stack, kind: Kind, code: str, throttling: bool
) -> None:
    # Given moto behind the proxy, and the relay's boto3 client pointed at the proxy
    processes.sqs(stack)
    async with SqsFaults(stack.sqs_port) as proxy:
        settings = load_settings({"SQS_QUEUE_URL": proxy.queue_url(stack.queue_url)})
        sqs = make_sqs_client(settings)

        # When every ReceiveMessage fails as `kind`
        proxy.inject("ReceiveMessage", kind)
        with pytest.raises(ClientError) as raised:
            await asyncio.to_thread(
                sqs.receive_message, QueueUrl=settings.sqs_queue_url, WaitTimeSeconds=0
            )

    # Then botocore parsed AWS's error code, made its 3 attempts, and classes it as AWS's
    error = raised.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["RetryAttempts"] == 2
    assert proxy.faulted("ReceiveMessage") == 3
    context = RetryContext(attempt_number=1, parsed_response=error)
    assert ThrottledRetryableChecker().is_retryable(context) is throttling


# --- the worker under each fault -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "says"),
    [
        ("throttle", "throttled", "ReceiveMessage throttled"),
        ("error500", "server_error", "ReceiveMessage answered 5xx"),
        ("reset_after", "connection", "ReceiveMessage lost its connection"),
    ],
)
async def test_a_failing_receive_is_retried_at_a_bounded_rate_and_loses_nothing(
    processes: Processes, stack: Stack, kind: Kind, reason: str, says: str
) -> None:
    async with relay_behind_faults(processes, stack) as relay:
        # Given a ready relay; When ReceiveMessage fails as `kind` (a reset after the
        # request reached SQS: the messages it took stay invisible until the visibility
        # timeout) while events are sent, for two of the worker's calls (3 attempts each)
        figures = await outage(relay, "ReceiveMessage", kind, faulted=6, says=says)

        # Then /readyz said what was wrong, the worker called at a bounded rate, counted
        # every failed attempt under its reason, logged the outage once and its end once
        assert figures.calls_per_s < MAX_CALLS_PER_S
        assert relay.sqs_errors()[reason] == relay.proxy.faulted("ReceiveMessage")
        assert outage_logs(relay.worker) == (1, 1)
        # And recovered by itself: every event reached the client exactly once
        assert figures.recover_s < RECOVER_S
        outcome = await delivered_exactly_once(relay, figures)
        report(f"sqs fault {kind} ReceiveMessage", **figures.figures(), **outcome)


async def test_a_receive_slower_than_the_read_timeout_is_retried_and_loses_nothing(
    processes: Processes, stack: Stack
) -> None:
    async with relay_behind_faults(processes, stack) as relay:
        # Given a ready relay; When ReceiveMessage's answers are held past the client's read
        # timeout (SQS_WAIT_S + 10 = 11 s: SQS took the messages, the answer never came)
        figures = await outage(
            relay, "ReceiveMessage", "slow", faulted=2, says="ReceiveMessage timed out"
        )

        # Then the timed-out attempt was counted, and nothing is lost once answers come again
        assert figures.calls_per_s < MAX_CALLS_PER_S
        assert relay.sqs_errors()["timeout"] >= 1
        assert outage_logs(relay.worker) == (1, 1)
        assert figures.recover_s < RECOVER_S
        outcome = await delivered_exactly_once(relay, figures)
        report("sqs fault slow ReceiveMessage", **figures.figures(), **outcome)


@pytest.mark.parametrize("kind", ["reset_after", "reset_before"])
async def test_a_delete_reset_mid_call_loses_nothing_and_no_client_sees_a_redelivery(
    processes: Processes, stack: Stack, kind: Kind
) -> None:
    async with relay_behind_faults(processes, stack) as relay:
        # Given a ready relay; When every DeleteMessageBatch's connection is reset, after the
        # request reached SQS (it deleted, the worker never heard) or before (nothing deleted:
        # the delivered messages come back after the visibility timeout)
        figures = await outage(
            relay,
            "DeleteMessageBatch",
            kind,
            faulted=3,
            says="DeleteMessageBatch lost its connection",
        )

        # Then the worker backed off, counted the failed attempts, and recovered
        assert figures.calls_per_s < MAX_CALLS_PER_S
        assert relay.sqs_errors()["connection"] == relay.proxy.faulted("DeleteMessageBatch")
        assert figures.recover_s < RECOVER_S
        # And the client saw every event once: the redeliveries were dropped by the server
        outcome = await delivered_exactly_once(relay, figures)
        if kind == "reset_before":
            assert outcome["duplicate_dropped"] >= 1
        report(f"sqs fault {kind} DeleteMessageBatch", **figures.figures(), **outcome)


async def test_a_return_reset_mid_call_loses_nothing_and_no_client_sees_a_redelivery(
    processes: Processes, stack: Stack
) -> None:
    # (8 s before a silent server leaves the delivery set: the events' receive comes first,
    # even on a loaded machine)
    slow_leave = {"ACK_TIMEOUT_S": "8", "SQS_VISIBILITY_TIMEOUT_S": "12"}
    async with relay_behind_faults(processes, stack, **slow_leave) as relay:
        # Given a ready relay whose server stops answering (SIGSTOP), so that the worker's
        # batch goes unconfirmed and is returned with ChangeMessageVisibilityBatch
        relay.server.send_signal(signal.SIGSTOP)
        try:
            # When every return's connection is reset after SQS took it, until the server
            # answers again
            figures = await outage(
                relay,
                "ChangeMessageVisibilityBatch",
                "reset_after",
                faulted=3,
                says="ChangeMessageVisibilityBatch lost its connection",
                on_lift=lambda: relay.server.send_signal(signal.SIGCONT),
            )
        finally:
            relay.server.send_signal(signal.SIGCONT)

        # Then the worker counted the failed attempts and recovered; the server, once back,
        # emitted the batch it had been handed, and dropped the batch's redelivery
        assert figures.calls_per_s < MAX_CALLS_PER_S
        errors = relay.sqs_errors()
        assert errors["connection"] == relay.proxy.faulted("ChangeMessageVisibilityBatch")
        outcome = await delivered_exactly_once(relay, figures)
        assert outcome["duplicate_dropped"] >= 1
        report("sqs fault reset_after ChangeMessageVisibilityBatch", **figures.figures(), **outcome)
