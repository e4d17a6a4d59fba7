"""Fast in-memory SQS-compatible HTTP server.

This is a load source for bench/, not an emulator; the tests use moto.

It speaks the AWS JSON 1.0 protocol that current botocore uses for SQS (``POST /`` with
``X-Amz-Target: AmazonSQS.<Operation>``), so an unmodified boto3/aiobotocore client pointed at
``endpoint_url`` can drive it. It exists because moto is far too slow to feed the relay at the
rates the benchmarks need; it trades fidelity for speed:

* Only standard queues and only the operations in ``FakeSQS._operations``. Signatures are not
  checked, any credentials work, ``QueueOwnerAWSAccountId`` is ignored.
* No message size limits, ``DelaySeconds`` is ignored, ``CreateQueue`` on an existing queue
  returns it unchanged (real SQS rejects differing attributes).
* Receipt handles: deleting or changing visibility with a stale (superseded) handle is accepted
  and does nothing, as is changing the visibility of a message that is not in flight. A handle
  that was never issued by this server is rejected with ``ReceiptHandleIsInvalid``.
* A RedrivePolicy is honoured: a message received more than ``maxReceiveCount`` times moves to
  the dead-letter queue on its next receive, as in SQS.
* ``--delay-ms`` is added to every response, a long-poll ReceiveMessage included (after its wait),
  to mimic the network round trip to a real region.

Data structures: visible messages sit in an insertion-ordered dict (FIFO-ish, O(1) pop/delete by
id); in-flight messages sit in a dict plus a min-heap of visibility deadlines that is drained
lazily whenever a queue is touched, so every operation is O(1) or O(log n).

Run ``python -m bench.fakesqs --help`` for the CLI, or ``await serve(...)`` programmatically.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import heapq
import itertools
import json
import signal
import struct
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_MAX_RECEIVE_COUNT = 5
MAX_BATCH_ENTRIES = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 43200
_CONTENT_TYPE = "application/x-amz-json-1.0"
_ALL_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
)

Json = dict[str, Any]


class SQSError(Exception):
    """An error answered as HTTP 400 in the shape botocore's JSON parser expects.

    ``shape`` becomes ``__type`` (botocore keeps the part after ``#``); ``query_code`` goes in the
    ``x-amzn-query-error`` header, which botocore prefers for ``Error.Code`` because SQS is
    "awsQueryCompatible", and which also selects the modeled exception class (e.g.
    ``client.exceptions.QueueDoesNotExist``).
    """

    def __init__(self, shape: str, query_code: str, message: str) -> None:
        super().__init__(message)
        self.shape = shape
        self.query_code = query_code
        self.message = message


def _invalid(message: str) -> SQSError:
    return SQSError("InvalidParameterValue", "InvalidParameterValue", message)


def _no_queue(name: str) -> SQSError:
    return SQSError(
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        f"The specified queue {name!r} does not exist.",
    )


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5_of_attributes(attributes: Json) -> str:
    """MD5OfMessageAttributes per the SQS docs (same algorithm as moto and the AWS SDKs).

    botocore does not verify it, but other SDKs do, and a wrong value is worse than none.
    """
    digest = hashlib.md5(usedforsecurity=False)

    def field(value: bytes) -> None:
        digest.update(struct.pack("!I", len(value)))
        digest.update(value)

    for name in sorted(attributes):
        value = attributes[name]
        field(name.encode())
        field(value["DataType"].encode())
        if "StringValue" in value:
            digest.update(b"\x01")
            field(value["StringValue"].encode())
        else:
            # JSON carries blobs base64-encoded; the checksum is over the raw bytes.
            digest.update(b"\x02")
            field(base64.b64decode(value["BinaryValue"]))
    return digest.hexdigest()


@dataclass(slots=True, eq=False)
class _Message:
    id: str
    body: str
    md5_body: str
    attributes: Json  # MessageAttributes exactly as sent (blobs stay base64 text)
    md5_attributes: str | None
    sent_ms: int
    receive_count: int = 0
    first_receive_ms: int = 0
    handle: str | None = None  # the only receipt handle that still acts on this message
    timer: int = 0  # id of the heap entry allowed to make it visible again; 0 = none


class _Queue:
    def __init__(self, name: str, url: str, attributes: dict[str, str]) -> None:
        self.name = name
        self.url = url
        self.arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
        self.created = int(time.time())
        self.attributes = dict(attributes)
        self.visibility_timeout = int(
            attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)
        )
        self.receive_wait = int(attributes.get("ReceiveMessageWaitTimeSeconds", 0))
        self.dlq_name: str | None = None
        self.max_receive_count = 0
        if "RedrivePolicy" in attributes:
            policy = json.loads(attributes["RedrivePolicy"])
            self.dlq_name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
            self.max_receive_count = int(policy["maxReceiveCount"])
        self.visible: OrderedDict[str, _Message] = OrderedDict()
        self.inflight: dict[str, _Message] = {}
        # (deadline, timer id, message); entries whose id no longer matches message.timer are
        # stale (deleted or re-timed) and are skipped when popped, which avoids O(n) removal.
        self._timers: list[tuple[float, int, _Message]] = []
        self._waiters: set[asyncio.Future[None]] = set()

    # -- visibility ----------------------------------------------------------------------

    def push(self, message: _Message) -> None:
        self.visible[message.id] = message

    def hide(self, message: _Message, seconds: float, now: float, timer_id: int) -> None:
        message.timer = timer_id
        heapq.heappush(self._timers, (now + seconds, timer_id, message))

    def expire(self, now: float) -> None:
        """Move in-flight messages whose visibility timeout has passed back to the visible set."""
        timers = self._timers
        woke = False
        while timers and timers[0][0] <= now:
            _, timer_id, message = heapq.heappop(timers)
            if message.timer == timer_id and self.inflight.pop(message.id, None) is not None:
                message.timer = 0
                self.visible[message.id] = message
                woke = True
        if woke:
            self.wake()

    def next_deadline(self) -> float | None:
        # May be a stale entry; that only costs one early, harmless wake-up of a long poll.
        return self._timers[0][0] if self._timers else None

    def find(self, handle: str) -> _Message | None:
        """The message that ``handle`` currently controls, or None if the handle is stale."""
        serial, sep, message_id = handle.partition(":")
        if not sep or not serial.isdigit():
            raise SQSError(
                "ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
                f"The input receipt handle {handle!r} is not a valid receipt handle.",
            )
        message = self.inflight.get(message_id) or self.visible.get(message_id)
        return message if message is not None and message.handle == handle else None

    # -- long polling --------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        """Sleep until something may have become visible (``wake``) or ``timeout`` passes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)

    def wake(self) -> None:
        # Wake every poller rather than one per message: with a few dozen pollers at most this
        # is cheap, and it cannot lose a wake-up when a woken poller is cancelled meanwhile.
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters.clear()


class FakeSQS:
    """All server state: the queues and the aiohttp server that exposes them."""

    def __init__(self, host: str, port: int, delay_ms: float = 0.0) -> None:
        self.host = host
        self.port = port
        self._delay = delay_ms / 1000.0
        self._queues: dict[str, _Queue] = {}
        self._serial = itertools.count(1)  # receipt handles and visibility timer ids
        self._closing = False
        self._runner: web.ServerRunner | None = None
        self._operations: dict[str, Callable[[Json], Awaitable[Json]]] = {
            "CreateQueue": self._create_queue,
            "GetQueueUrl": self._get_queue_url,
            "GetQueueAttributes": self._get_queue_attributes,
            "SendMessage": self._send_message,
            "SendMessageBatch": self._send_message_batch,
            "ReceiveMessage": self._receive_message,
            "DeleteMessage": self._delete_message,
            "DeleteMessageBatch": self._delete_message_batch,
            "ChangeMessageVisibility": self._change_message_visibility,
            "ChangeMessageVisibilityBatch": self._change_message_visibility_batch,
        }

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; with port 0, ``self.port`` becomes the port actually bound."""
        # The low-level server skips routing and middlewares; access_log=None skips the
        # per-request logging work entirely. A short shutdown timeout keeps SIGTERM snappy.
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        # Release long polls first so the runner has no in-flight handlers to wait for.
        self._closing = True
        for queue in self._queues.values():
            queue.wake()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def queue_url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_ID}/{name}"

    def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """Create ``name`` unless it exists; return its URL."""
        if name not in self._queues:
            self._queues[name] = _Queue(name, self.queue_url(name), attributes or {})
        return self._queues[name].url

    def create_relay_queues(self, name: str) -> str:
        """Create ``name`` and ``<name>-dlq`` with a RedrivePolicy; return the main queue URL."""
        dlq = f"{name}-dlq"
        self.create_queue(dlq)
        policy = {
            "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{dlq}",
            "maxReceiveCount": DEFAULT_MAX_RECEIVE_COUNT,
        }
        return self.create_queue(name, {"RedrivePolicy": json.dumps(policy)})

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        # Any path is accepted: the JSON protocol always posts to the endpoint root, and the
        # queue is named by the QueueUrl in the body.
        headers: dict[str, str] = {}
        try:
            service, _, name = request.headers.get("X-Amz-Target", "").partition(".")
            operation = self._operations.get(name) if service == "AmazonSQS" else None
            if operation is None:
                raise SQSError(
                    "UnsupportedOperation",
                    "AWS.SimpleQueueService.UnsupportedOperation",
                    f"fakesqs does not implement {name or 'this request'!r}",
                )
            raw = await request.read()
            try:
                params = json.loads(raw) if raw else {}
            except ValueError as exc:
                raise _invalid(f"request body is not JSON: {exc}") from None
            try:
                status, payload = 200, await operation(params)
            except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
                # Malformed parameters: answer 400 rather than 500, since botocore retries 5xx
                # and would hide the mistake behind slow retries.
                raise _invalid(f"bad parameters for {name}: {exc!r}") from None
        except SQSError as exc:
            status = 400
            payload = {"__type": f"com.amazonaws.sqs#{exc.shape}", "message": exc.message}
            headers["x-amzn-query-error"] = f"{exc.query_code};Sender"
        if self._delay:
            await asyncio.sleep(self._delay)
        return web.Response(
            body=json.dumps(payload, separators=(",", ":")).encode(),
            status=status,
            content_type=_CONTENT_TYPE,
            headers=headers,
        )

    def _queue(self, params: Json) -> _Queue:
        url = params["QueueUrl"]
        name = url.rstrip("/").rsplit("/", 1)[-1]
        queue = self._queues.get(name)
        if queue is None:
            raise _no_queue(name)
        return queue

    # -- queues --------------------------------------------------------------------------

    async def _create_queue(self, params: Json) -> Json:
        name = params["QueueName"]
        if not name or name.endswith(".fifo"):
            raise _invalid("fakesqs supports only standard queues with a non-empty name")
        return {"QueueUrl": self.create_queue(name, params.get("Attributes"))}

    async def _get_queue_url(self, params: Json) -> Json:
        name = params["QueueName"]
        if name not in self._queues:
            raise _no_queue(name)
        return {"QueueUrl": self._queues[name].url}

    async def _get_queue_attributes(self, params: Json) -> Json:
        queue = self._queue(params)
        queue.expire(time.monotonic())
        values = {
            **queue.attributes,
            "QueueArn": queue.arn,
            "ApproximateNumberOfMessages": str(len(queue.visible)),
            "ApproximateNumberOfMessagesNotVisible": str(len(queue.inflight)),
            "ApproximateNumberOfMessagesDelayed": "0",
            "VisibilityTimeout": str(queue.visibility_timeout),
            "CreatedTimestamp": str(queue.created),
        }
        names = params.get("AttributeNames") or []
        if "All" in names:
            return {"Attributes": values}
        # Unknown names are skipped rather than rejected (SQS says InvalidAttributeName).
        return {"Attributes": {n: values[n] for n in names if n in values}}

    # -- sending -------------------------------------------------------------------------

    def _new_message(self, params: Json) -> _Message:
        body = params["MessageBody"]
        if not isinstance(body, str) or not body:
            raise _invalid("The message body must be a non-empty string.")
        attributes = params.get("MessageAttributes") or {}
        return _Message(
            id=str(uuid.uuid4()),
            body=body,
            md5_body=_md5_hex(body.encode()),
            attributes=attributes,
            md5_attributes=_md5_of_attributes(attributes) if attributes else None,
            sent_ms=int(time.time() * 1000),
        )

    @staticmethod
    def _sent(message: _Message) -> Json:
        result = {"MessageId": message.id, "MD5OfMessageBody": message.md5_body}
        if message.md5_attributes is not None:
            result["MD5OfMessageAttributes"] = message.md5_attributes
        return result

    async def _send_message(self, params: Json) -> Json:
        queue = self._queue(params)
        message = self._new_message(params)
        queue.push(message)
        queue.wake()
        return self._sent(message)

    async def _send_message_batch(self, params: Json) -> Json:
        queue = self._queue(params)
        successful: list[Json] = []
        failed: list[Json] = []
        for entry in _batch_entries(params):
            try:
                message = self._new_message(entry)
            except SQSError as exc:
                failed.append(_failure(entry["Id"], exc))
                continue
            queue.push(message)
            successful.append({"Id": entry["Id"], **self._sent(message)})
        if successful:
            queue.wake()  # once per batch, not per message
        return {"Successful": successful, "Failed": failed}

    # -- receiving -----------------------------------------------------------------------

    async def _receive_message(self, params: Json) -> Json:
        queue = self._queue(params)
        limit = int(params.get("MaxNumberOfMessages", 1))
        wait = int(params.get("WaitTimeSeconds", queue.receive_wait))
        visibility = int(params.get("VisibilityTimeout", queue.visibility_timeout))
        if not 1 <= limit <= MAX_BATCH_ENTRIES:
            raise _invalid("MaxNumberOfMessages must be between 1 and 10.")
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise _invalid("WaitTimeSeconds must be between 0 and 20.")
        if not 0 <= visibility <= MAX_VISIBILITY_TIMEOUT:
            raise _invalid("VisibilityTimeout must be between 0 and 43200.")
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            messages = self._take(queue, limit, visibility, now)
            if messages or now >= deadline or self._closing:
                break
            # Also wake at the next visibility deadline: an expiring message is not announced.
            until = deadline
            next_deadline = queue.next_deadline()
            if next_deadline is not None:
                until = min(until, next_deadline)
            await queue.wait(max(until - now, 0.0))
        if not messages:
            return {}  # SQS omits "Messages" entirely when there are none
        system = _system_attribute_names(params)
        selectors = params.get("MessageAttributeNames") or []
        return {"Messages": [_render(m, system, selectors) for m in messages]}

    def _take(self, queue: _Queue, limit: int, visibility: int, now: float) -> list[_Message]:
        queue.expire(now)
        taken: list[_Message] = []
        now_ms = int(time.time() * 1000)
        while queue.visible and len(taken) < limit:
            _, message = queue.visible.popitem(last=False)
            if queue.dlq_name and message.receive_count >= queue.max_receive_count:
                dlq = self._queues.get(queue.dlq_name)
                if dlq is not None:
                    # SQS moves a message to the DLQ on the receive after its last allowed one.
                    message.handle = None
                    dlq.push(message)
                    dlq.wake()
                    continue
            message.receive_count += 1
            message.first_receive_ms = message.first_receive_ms or now_ms
            message.handle = f"{next(self._serial)}:{message.id}"
            queue.inflight[message.id] = message
            # A 0 s timeout still goes through the heap so this same call cannot return it twice.
            queue.hide(message, visibility, now, next(self._serial))
            taken.append(message)
        return taken

    # -- deleting and visibility ----------------------------------------------------------

    def _delete(self, queue: _Queue, params: Json) -> None:
        message = queue.find(params["ReceiptHandle"])
        if message is not None:  # a stale handle is accepted and does nothing, as in SQS
            if queue.inflight.pop(message.id, None) is None:
                del queue.visible[message.id]  # its visibility had expired, not yet re-received
            message.timer = 0
            message.handle = None

    def _change_visibility(self, queue: _Queue, params: Json) -> None:
        timeout = int(params["VisibilityTimeout"])
        if not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
            raise _invalid("VisibilityTimeout must be between 0 and 43200.")
        message = queue.find(params["ReceiptHandle"])
        if message is None or message.id not in queue.inflight:
            return  # stale handle or not in flight: ignored (SQS may say MessageNotInflight)
        now = time.monotonic()
        if timeout == 0:
            del queue.inflight[message.id]
            message.timer = 0
            queue.push(message)
            queue.wake()
        else:
            queue.hide(message, timeout, now, next(self._serial))

    async def _delete_message(self, params: Json) -> Json:
        self._delete(self._queue(params), params)
        return {}

    async def _delete_message_batch(self, params: Json) -> Json:
        queue = self._queue(params)
        return _run_batch(params, lambda entry: self._delete(queue, entry))

    async def _change_message_visibility(self, params: Json) -> Json:
        self._change_visibility(self._queue(params), params)
        return {}

    async def _change_message_visibility_batch(self, params: Json) -> Json:
        queue = self._queue(params)
        return _run_batch(params, lambda entry: self._change_visibility(queue, entry))


def _batch_entries(params: Json) -> list[Json]:
    entries: list[Json] = params.get("Entries") or []
    if not entries:
        raise SQSError(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one entry in the request.",
        )
    if len(entries) > MAX_BATCH_ENTRIES:
        raise SQSError(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}.",
        )
    if len({entry["Id"] for entry in entries}) != len(entries):
        raise SQSError(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "Two or more batch entries in the request have the same Id.",
        )
    return entries


def _failure(entry_id: str, exc: SQSError) -> Json:
    return {"Id": entry_id, "SenderFault": True, "Code": exc.query_code, "Message": exc.message}


def _run_batch(params: Json, action: Callable[[Json], None]) -> Json:
    successful: list[Json] = []
    failed: list[Json] = []
    for entry in _batch_entries(params):
        try:
            action(entry)
        except SQSError as exc:
            failed.append(_failure(entry["Id"], exc))
        else:
            successful.append({"Id": entry["Id"]})
    return {"Successful": successful, "Failed": failed}


def _system_attribute_names(params: Json) -> tuple[str, ...]:
    # AttributeNames is the deprecated spelling of MessageSystemAttributeNames; accept both.
    names = {*params.get("MessageSystemAttributeNames", ()), *params.get("AttributeNames", ())}
    if "All" in names:
        return _ALL_SYSTEM_ATTRIBUTES
    return tuple(n for n in _ALL_SYSTEM_ATTRIBUTES if n in names)


def _select_attributes(attributes: Json, selectors: list[str]) -> Json:
    if "All" in selectors or ".*" in selectors:
        return attributes
    prefixes = tuple(s[:-2] for s in selectors if s.endswith(".*"))
    return {
        name: value
        for name, value in attributes.items()
        if name in selectors or (prefixes and name.startswith(prefixes))
    }


def _render(message: _Message, system: tuple[str, ...], selectors: list[str]) -> Json:
    result: Json = {
        "MessageId": message.id,
        "ReceiptHandle": message.handle,
        "MD5OfBody": message.md5_body,
        "Body": message.body,
    }
    if system:
        values = {
            "SenderId": ACCOUNT_ID,
            "SentTimestamp": str(message.sent_ms),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
        }
        result["Attributes"] = {name: values[name] for name in system}
    if selectors and message.attributes:
        selected = _select_attributes(message.attributes, selectors)
        if selected:
            result["MessageAttributes"] = selected
            result["MD5OfMessageAttributes"] = (
                message.md5_attributes
                if len(selected) == len(message.attributes)
                else _md5_of_attributes(selected)
            )
    return result


async def serve(host: str, port: int, queue: str, delay_ms: float = 0.0) -> None:
    """Serve until cancelled, with ``queue`` and ``<queue>-dlq`` created.

    Prints one ``fakesqs ready: <queue url>`` line to stderr once requests are accepted.
    """
    fake = FakeSQS(host, port, delay_ms)
    await fake.start()
    try:
        url = fake.create_relay_queues(queue)
        print(f"fakesqs ready: {url}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()  # forever; cancellation is the way out
    finally:
        await fake.close()


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    task = asyncio.create_task(serve(args.host, args.port, args.queue, args.delay_ms))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    # Only the signal handler cancels the task; any other failure propagates.
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fakesqs",
        description=(
            "Fast in-memory SQS-compatible server (AWS JSON 1.0 protocol) used as a load source "
            "for the push-relay benchmarks. Not an emulator: the tests use moto. Creates QUEUE "
            "and QUEUE-dlq (RedrivePolicy maxReceiveCount 5), then prints 'fakesqs ready: <url>' "
            "to stderr. Stops cleanly on SIGTERM/SIGINT."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9400, help="bind port (default: %(default)s)")
    parser.add_argument(
        "--queue", default="push-relay", help="main queue name to create (default: %(default)s)"
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="extra latency added to every response, long polls included, to mimic a real "
        "AWS round trip (default: %(default)s)",
    )
    asyncio.run(_serve_until_signalled(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
