"""The request environ python-engineio reads, made from an ASGI scope without a class per
request.

python-engineio's ASGI driver turns each request's scope into a WSGI-like environ (its
`translate_request`, the `_async` table's entry), and defines its body reader class inside
that function: a new class for every request, about 8 % of the server's CPU per connect in a
2,000-client storm (py-spy). This builds the same environ (the same keys and values: checked
against the driver's own by tests/server/test_asgi_environ.py) with one body reader class.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestBody:
    """`wsgi.input`: engine.io reads a long-poll POST's body with ``await read()``; the
    body's further ASGI messages are received on the first read."""

    __slots__ = ("_event", "_payload", "_receive")

    def __init__(self, event: dict[str, Any], receive: Receive) -> None:
        self._event = event
        self._receive = receive
        self._payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes:
        if self._payload is None and self._event["type"] == "http.request":
            payload = self._event.get("body") or b""
            while self._event.get("more_body"):
                self._event = await self._receive()
                if self._event["type"] == "http.request" and (
                    length is None or len(payload) < length
                ):
                    payload += self._event.get("body") or b""
            self._payload = payload
        payload = self._payload or b""
        if length is None:
            self._payload = b""
            return payload
        self._payload = payload[length:]
        return payload[:length]


async def translate_request(scope: dict[str, Any], receive: Receive, send: Send) -> dict[str, Any]:
    """The environ of one request (an empty one for an ASGI message that is not a request)."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        "wsgi.input": RequestBody(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "asgi",
        "SERVER_PORT": "0",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a header that cannot be decoded is left out
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ
