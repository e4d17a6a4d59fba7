"""server/adapters/asgi_environ.py makes the environ python-engineio's own ASGI driver makes:
the same keys and values, and the same body, for every kind of request."""

from __future__ import annotations

from typing import Any

import pytest
from engineio.async_drivers.asgi import translate_request as engineio_translate

from server.adapters.asgi_environ import translate_request

GET = {
    "type": "http",
    "method": "GET",
    "path": "/socket.io/",
    "query_string": b"EIO=4&transport=polling&t=abc",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-for", b"10.0.0.2"),  # twice: joined with a comma
        (b"cookie", b"a=1"),
        (b"x-forwarded-proto", b"https"),
        (b"x-bad", b"\xff\xfe"),  # not UTF-8: left out
    ],
}
POST = {
    "type": "http",
    "method": "POST",
    "path": "/socket.io/",
    "query_string": b"EIO=4&transport=polling&sid=xyz",
    "headers": [(b"content-type", b"text/plain;charset=UTF-8"), (b"content-length", b"9")],
}
WEBSOCKET = {
    "type": "websocket",
    "path": "/socket.io/",
    "query_string": b"",
    "headers": [(b"upgrade", b"websocket"), (b"sec-websocket-key", b"x")],
}


def receiver(events: list[dict[str, Any]]) -> Any:
    queue = list(events)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def both(
    scope: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    async def send(_: dict[str, Any]) -> None:
        pass

    ours = await translate_request(scope, receiver(events), send)
    theirs = await engineio_translate(scope, receiver(events), send)
    return ours, theirs


def comparable(environ: dict[str, Any]) -> dict[str, Any]:
    """All but the per-call objects (the body reader, the receive function)."""
    return {k: v for k, v in environ.items() if k not in ("wsgi.input", "asgi.receive")}


@pytest.mark.parametrize(
    ("scope", "events"),
    [
        (GET, [{"type": "http.request", "body": b"", "more_body": False}]),
        (WEBSOCKET, [{"type": "websocket.connect"}]),
        (POST, [{"type": "http.request", "body": b"4hel", "more_body": True},
                {"type": "http.request", "body": b"lo!!!", "more_body": False}]),
    ],
    ids=["long-poll GET", "websocket", "long-poll POST"],
)  # fmt: skip
async def test_the_environ_is_engineios_own(
    scope: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    ours, theirs = await both(scope, events)
    assert comparable(ours) == comparable(theirs)
    assert ours["HTTP_X_FORWARDED_FOR" if scope is GET else "PATH_INFO"]


async def test_a_body_in_two_messages_reads_whole_as_engineios_does() -> None:
    events = [
        {"type": "http.request", "body": b"4hel", "more_body": True},
        {"type": "http.request", "body": b"lo!!!", "more_body": False},
    ]
    ours, theirs = await both(POST, events)
    assert await ours["wsgi.input"].read() == await theirs["wsgi.input"].read() == b"4hello!!!"
    # engine.io reads a long-poll POST's body by its Content-Length
    ours, theirs = await both(POST, events)
    assert await ours["wsgi.input"].read(9) == await theirs["wsgi.input"].read(9) == b"4hello!!!"


async def test_a_message_that_is_not_a_request_gives_an_empty_environ() -> None:
    ours, theirs = await both(GET, [{"type": "http.disconnect"}])
    assert ours == theirs == {}
