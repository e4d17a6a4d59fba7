"""An HTTP proxy in front of an SQS emulator that breaks chosen calls the ways SQS does.

It forwards each request (SQS's JSON protocol, the action in the `X-Amz-Target` header) to
the emulator and back, unless a fault is set for that action: a throttling error or a 500 as
AWS sends them (botocore classifies them as it would AWS's: throttled, transient), an answer
held past the client's read timeout, or the connection reset before or after the request
reached the emulator (after is the nasty one: SQS did the delete, the caller never heard).
It counts every call per action with its time, so that a test can say how many calls per
second a client made while SQS failed. asyncio streams for the client's side (a reset must
be a real one), aiohttp for the emulator's.

Usage, in a test's event loop::

    async with SqsFaults(emulator_port) as proxy:     # clients call proxy.url
        proxy.inject("ReceiveMessage", "throttle")     # every ReceiveMessage is throttled
        ...
        proxy.lift()                                   # SQS answers again
        proxy.rate("ReceiveMessage", since, until)     # calls per second in that span
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

import aiohttp

#: What a fault does to the calls it applies to.
Kind = Literal["throttle", "error500", "slow", "reset_before", "reset_after"]
KINDS: tuple[Kind, ...] = ("throttle", "error500", "slow", "reset_before", "reset_after")

logger = logging.getLogger(__name__)

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    """One action's fault: `kind`, for `count` calls (None: until lifted); a `slow` answer is
    held `delay_s` or until the fault is lifted, whichever comes first."""

    kind: Kind
    count: int | None = None
    delay_s: float = 60.0
    #: The throttling error's code: SQS's own `RequestThrottled` (its model's error shape) or
    #: the AWS-wide `ThrottlingException`; both are in botocore's list of throttling codes.
    throttle_code: str = "RequestThrottled"
    lifted: asyncio.Event = field(default_factory=asyncio.Event)


def error_response(kind: Kind, code: str = "RequestThrottled") -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS answers a JSON-protocol SQS call with for `kind`
    ("throttle" or "error500"): `__type` names the error as `namespace#Code`, and SQS (a
    query-compatible service) adds `x-amzn-query-error: Code;Sender|Receiver`, from which
    botocore takes the error code."""
    if kind == "throttle":
        status, fault, message = 400, "Sender", "Rate exceeded"
    elif kind == "error500":
        status, fault, code, message = 500, "Receiver", "InternalError", "Internal error"
    else:
        raise ValueError(f"{kind!r} is not an error answer")
    body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-RequestId": str(uuid.uuid4()),
        "x-amzn-query-error": f"{code};{fault}",
    }
    return status, headers, body


class SqsFaults:
    """The proxy: `inject()` a fault per action, `lift()` it, read the calls it counted."""

    def __init__(self, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.port = port
        self.host = host
        #: (monotonic time, action, what happened: "forwarded" or the fault's kind) per call.
        self.calls: list[tuple[float, str, str]] = []
        self._faults: dict[str, Fault] = {}
        self._listener: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> SqsFaults:
        # A connection per forwarded call: the emulator's server may close a kept-alive
        # connection just as aiohttp reuses it, and the caller would see a reset that no
        # fault made (a worker's receive failing at random broke a test's timing).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        self._listener = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.lift()
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._session is not None:
            await self._session.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def queue_url(self, queue_url: str) -> str:
        """`queue_url` (the emulator's) as reached through the proxy."""
        _scheme, _, rest = queue_url.partition("://")
        return f"{self.url}/{rest.partition('/')[2]}"

    # --- the test's side ------------------------------------------------------------------------

    def inject(self, action: str, kind: Kind, **options: object) -> Fault:
        """From now on, calls of `action` (e.g. "ReceiveMessage", no "AmazonSQS." prefix) fail
        as `kind`; `options` are `Fault`'s (count, delay_s, throttle_code)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(KINDS)}")
        self.lift(action)
        fault = Fault(kind, **options)  # type: ignore[arg-type]
        self._faults[action] = fault
        return fault

    def lift(self, action: str | None = None) -> None:
        """End the fault of `action`, or every fault; answers held by `slow` go out now."""
        for name in [action] if action is not None else list(self._faults):
            fault = self._faults.pop(name, None)
            if fault is not None:
                fault.lifted.set()

    def count(
        self, action: str | None = None, since: float = 0.0, until: float | None = None
    ) -> int:
        """Calls of `action` (None: every action) that arrived in [since, until]."""
        end = time.monotonic() if until is None else until
        return sum(1 for t, a, _ in self.calls if since <= t <= end and action in (None, a))

    def faulted(self, action: str | None = None) -> int:
        """Calls of `action` (None: every action) that met a fault."""
        return sum(1 for _t, a, what in self.calls if what != "forwarded" and action in (None, a))

    def rate(self, action: str | None, since: float, until: float) -> float:
        """Calls per second of `action` (None: every action) between `since` and `until`."""
        return self.count(action, since, until) / max(until - since, 1e-9)

    # --- the proxy ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                action = headers.get("x-amz-target", "").rpartition(".")[2] or "unknown"
                if not await self._answer(writer, action, method, target, headers, body):
                    return
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The caller went mid-call, or the proxy is closing: a line for the failure output
            # of a test that meets a reset no fault made.
            logger.warning("SQS fault proxy: a connection ended mid-call: %r", exc)
            return
        except aiohttp.ClientError as exc:  # the emulator did not answer: the caller's reset
            logger.warning("SQS fault proxy: forwarding to the emulator failed: %r", exc)
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        action: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Answer one request; False once the connection is reset."""
        fault = self._take_fault(action)
        self.calls.append((time.monotonic(), action, fault.kind if fault else "forwarded"))
        if fault is not None and fault.kind in ("throttle", "error500"):
            status, answer_headers, answer = error_response(fault.kind, fault.throttle_code)
            await _write(writer, status, answer_headers, answer)
            return True
        if fault is not None and fault.kind == "reset_before":
            writer.transport.abort()
            return False
        status, answer_headers, answer = await self._forward(method, target, headers, body)
        if fault is not None and fault.kind == "reset_after":
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "slow":
            # Held until then; a caller whose read timeout passed meanwhile has gone, and
            # the answer is lost as AWS's would be (the received messages stay invisible).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fault.lifted.wait(), fault.delay_s)
        await _write(writer, status, answer_headers, answer)
        return True

    def _take_fault(self, action: str) -> Fault | None:
        fault = self._faults.get(action)
        if fault is None:
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                del self._faults[action]
        return fault

    async def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        # The caller's Host goes on, so that the queue URLs the emulator answers with name the
        # proxy: a caller that follows one (the dead-letter queue's) stays behind it.
        async with self._session.request(
            method,
            f"http://127.0.0.1:{self.target_port}{target}",
            headers={k: v for k, v in headers.items() if k not in _HOP_BY_HOP - {"host"}},
            data=body,
        ) as response:
            answer = await response.read()
            kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
            return response.status, kept, answer


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _write(
    writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
) -> None:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
