"""uvicorn's internals we use."""

from __future__ import annotations

from server.adapters.contract.record import ATTRIBUTE, BEHAVIOUR, NO_FRAMES, OVERRIDE, Internal

_UV_WS = "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol"
_UV_SERVER = "uvicorn.server:Server"
_OURS_WS = "server.adapters.wsprotocol:_WebSocketProtocol"
_OURS_SERVER = "server.adapters.uvicorn_server:UvicornServer"
_UV_HTTP = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"
_OURS_HTTP = "server.adapters.httpprotocol:_HttpProtocol"
_NO_HEADER_TIMEOUT = "no header timeout: half-open and slow-header connections are kept for ever"
_MORE_HELD = "about 3 KB more held per client (asyncio's queue, the handshake's headers)"
_PROTOCOL_STATE = "write_frame/send misjudge the connection: frames to a closed one, or none"

# fmt: off
UVICORN: tuple[Internal, ...] = (
    *(
        Internal(
            "uvicorn", _UV_HTTP, name, OVERRIDE, "adapters/httpprotocol.py: _HttpProtocol",
            breaks, ours=_OURS_HTTP, params=params,
        )
        for name, params, breaks in (
            ("connection_made", ("transport",),
             "no connection cap (CLIENT_MAX_CONNECTIONS), and " + _NO_HEADER_TIMEOUT),
            ("on_message_begin", (), "a kept-alive request has no header timeout"),
            ("on_headers_complete", (), "every connection is closed at the header timeout"),
            ("connection_lost", ("exc",), "a gone connection's header timer fires (harmless)"),
            ("handle_websocket_upgrade", (),
             "14 objects (~3 KB) per WebSocket client wait for a full collection"),
        )
    ),
    *(
        Internal(
            "uvicorn", _UV_HTTP, name, ATTRIBUTE, "adapters/httpprotocol.py: _HttpProtocol",
            breaks, set_in=set_in,
        )
        for name, set_in, breaks in (
            ("connections", "__init__", "no connection cap: every connect fails (AttributeError)"),
            ("parser", "__init__",
             "14 objects (~3 KB) per WebSocket client wait for a full collection"),
            ("loop", "__init__", _NO_HEADER_TIMEOUT + " (AttributeError)"),
            ("transport", "connection_made", "refusals fail (AttributeError)"),
            ("client", "connection_made", "refusals fail (AttributeError)"),
        )
    ),
    Internal(
        "uvicorn", _UV_WS, "data_received", OVERRIDE,
        "adapters/wsprotocol.py: _WebSocketProtocol",
        "a message past CLIENT_MESSAGE_MAX_BYTES is refused uncounted and unlogged",
        ours=_OURS_WS, params=("data",),
    ),
    Internal(
        "uvicorn", _UV_WS, "config", ATTRIBUTE,
        "adapters/wsprotocol.py: _WebSocketProtocol.data_received",
        "an oversized message's refusal fails (AttributeError)", set_in="__init__",
    ),
    *(
        Internal(
            "uvicorn", _UV_WS, name, OVERRIDE,
            "adapters/wsprotocol.py: _WebSocketProtocol", breaks, ours=_OURS_WS, params=params
        )
        for name, params, breaks in (
            ("handle_text", ("event",), "every PONG wakes the app again (a task per ping)"),
            ("handle_connect", ("event",), "no frame writer in the scope: " + NO_FRAMES),
            ("send", ("message",), "no write timeout: a client that stops reading is kept"),
        )
    ),
    *(
        Internal(
            "uvicorn", _UV_WS, name, OVERRIDE,
            "adapters/wsprotocol.py: _WebSocketProtocol (frames held by the coalescer)", breaks,
            ours=_OURS_WS, params=params,
        )
        for name, params, breaks in (
            ("shutdown", (), "a stopping server's close overtakes held frames: the last lost"),
            ("connection_lost", ("exc",), "a gone client's held frames stay held until written"),
        )
    ),
    Internal(
        "uvicorn", _UV_WS, "scope", ATTRIBUTE,
        "adapters/wsprotocol.py: _WebSocketProtocol.handle_connect", NO_FRAMES,
        set_in="handle_connect",
    ),
    *(
        Internal(
            "uvicorn", _UV_WS, name, ATTRIBUTE,
            "adapters/wsprotocol.py: _WebSocketProtocol", _PROTOCOL_STATE,
        )
        for name in (
            "close_sent", "writable", "handshake_complete", "disconnected",
            "initial_response", "conn", "transport", "loop", "client",
        )
    ),
    Internal(
        "uvicorn", _UV_WS, "queue", ATTRIBUTE,
        "adapters/wsprotocol.py: _WebSocketProtocol.__init__ (a LeanQueue in its place)",
        _MORE_HELD,
    ),
    Internal(
        "uvicorn", _UV_WS, "receive", BEHAVIOUR,
        "adapters/wsprotocol.py: _WebSocketProtocol.__init__ (what the LeanQueue must do)",
        _MORE_HELD, source="await self.queue.get()",
    ),
    *(
        Internal(
            "uvicorn", _UV_WS, name, ATTRIBUTE,
            "adapters/wsprotocol.py: _WebSocketProtocol.send (let go once answered)",
            _MORE_HELD, set_in="handle_connect",
        )
        for name in ("request", "response")
    ),
    Internal(
        "uvicorn", _UV_WS, "send", BEHAVIOUR,
        "adapters/wsprotocol.py: _WebSocketProtocol.send (the response is read only before)",
        "the accept fails (AttributeError): no WebSocket connects",
        source="if not self.handshake_complete and self.initial_response is None:",
    ),
    *(
        Internal(
            "uvicorn", _UV_WS, name, ATTRIBUTE,
            "adapters/wsprotocol.py: send, reset",
            "a client that does not answer the close is kept",
        )
        for name in ("close_timer", "close_timeout")
    ),
    Internal(
        "uvicorn", _UV_SERVER, "_captured_signals", ATTRIBUTE,
        "adapters/uvicorn_server.py: UvicornServer.capture_signals",
        "the server re-raises SIGTERM after its graceful stop: killed, not exit 0",
    ),
    Internal(
        "uvicorn", _UV_SERVER, "capture_signals", OVERRIDE,
        "adapters/uvicorn_server.py: UvicornServer",
        "the server re-raises SIGTERM after its graceful stop: killed, not exit 0",
        ours=_OURS_SERVER,
    ),
    Internal(
        "uvicorn", _UV_SERVER, "handle_exit", OVERRIDE,
        "adapters/uvicorn_server.py: UvicornServer",
        "the stop deadline counts from shutdown, not from the signal",
        ours=_OURS_SERVER, params=("sig", "frame"),
    ),
    Internal(
        "uvicorn", _UV_SERVER, "shutdown", OVERRIDE,
        "adapters/uvicorn_server.py: UvicornServer",
        "no drain before connections close: events emitted (and deleted) to nobody",
        ours=_OURS_SERVER, params=("sockets",), source="self.config.timeout_graceful_shutdown",
    ),
    Internal(
        "uvicorn", _UV_SERVER, "started", ATTRIBUTE,
        "adapters/uvicorn_server.py: UvicornServer.serving",
        "a failed start-up exits 0 instead of 3",
    ),
    Internal(
        "uvicorn", _UV_SERVER, "server_state", ATTRIBUTE,
        "adapters/uvicorn_server.py: UvicornServer.open_connections",
        "the collector's backstop counts no connections: a storm's objects call for a full "
        "pass (or AttributeError)",
    ),
    Internal(
        "uvicorn", _UV_SERVER, "config", ATTRIBUTE,
        "adapters/uvicorn_server.py: UvicornServer.shutdown",
        "the stop fails (AttributeError)",
    ),
    Internal(
        "uvicorn", _UV_WS, "send", BEHAVIOUR,
        "adapters/wsprotocol.py: quiet_connection_lines (its format string)",
        "a log line per WebSocket connect at INFO again",
        source='''"WebSocket %s" [accepted]''',
    ),
)
# fmt: on
