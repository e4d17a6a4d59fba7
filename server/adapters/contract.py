"""Every library internal the project relies on, as data: one :class:`Internal` per name.

A name is *internal* when it starts with an underscore, or when the library does not
document it (not in its API reference: python-socketio and python-engineio document only
what has a docstring; uvicorn documents its settings and `Server.run`/`serve`, not its
protocol classes). tests/server/test_library_contract.py checks each record against the
installed libraries, and that the table in this package's docstring is these records.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The kinds of use, and what the contract test checks for each.
OVERRIDE = "method overridden"  # callable on the library class; ours defines its own
CALLED = "method called"  # callable on the library class, taking `params`
ATTRIBUTE = "attribute"  # on a real instance (or class, or module), or assigned in `source`
BEHAVIOUR = "behaviour"  # the library function `name` of `owner` does what `source` says

#: The versions checked: the lowest that the contract test passes on (names, signatures and
#: source snippets: `uv run --with LIB==X pytest tests/server/test_library_contract.py`), and
#: the installed one (uv.lock), on which the whole test suite runs. pyproject.toml's bounds.
VERIFIED = {
    "python-socketio": "5.18.0-5.18.1",  # pending_connect: 5.18.0
    "python-engineio": "4.11.0-4.15.1",
    "uvicorn": "0.53.0-0.54.0",  # keepalive_timeout, pong_timer, ...: 0.53.0
    "websockets": "13.0-17.4",
    "botocore": "1.34.0-1.43.117",
    "urllib3": "2.0.0-2.8.0",
    "CPython": "3.11.7",
}


@dataclass(frozen=True, slots=True)
class Internal:
    """One library internal we use.

    `owner` is "module:Qualname" of the library class (or module) that has `name`; `used_in`
    where we use it (paths under server/ unless they say worker/ or client/); `ours`
    "module:Qualname" of our subclass that overrides it; `params` the parameters we pass or
    receive by name; `source` what the library's source of `name` must contain (a behaviour
    we rely on); `set_in` the library method that assigns an attribute set after `__init__`.
    """

    library: str
    owner: str
    name: str
    kind: str
    used_in: str
    breaks: str
    ours: str = ""
    params: tuple[str, ...] = ()
    source: str = ""
    set_in: str = ""


_SIO_SERVER = "socketio.async_server:AsyncServer"
_SIO_MANAGER = "socketio.async_manager:AsyncManager"
_EIO_SERVER = "engineio.async_server:AsyncServer"
_EIO_SOCKET = "engineio.async_socket:AsyncSocket"
_EIO_WS = "engineio.async_drivers.asgi:WebSocket"
_EIO_PACKET = "engineio.packet:Packet"
_UV_WS = "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol"
_UV_SERVER = "uvicorn.server:Server"
_OURS_MANAGER = "server.adapters.fanout:FanoutManager"
_OURS_EIO = "server.adapters.outgoing:BoundedEngineIO"
_OURS_SOCKET = "server.adapters.transport:HeartbeatSocket"
_OURS_WS = "server.adapters.wsprotocol:_WebSocketProtocol"
_OURS_SERVER = "server.adapters.uvicorn_server:UvicornServer"
_NO_FRAMES = "no direct frame path: every packet goes through the writer task"
_SOCKET_STATE = "the heartbeat, websocket transport and slow-client cut misread the socket"
_ROOMS = "the per-client room index: a leaving client keeps rooms, or emits miss clients"
_PROTOCOL_STATE = "write_frame/send misjudge the connection: frames to a closed one, or none"

# fmt: off
INTERNALS: tuple[Internal, ...] = (
    # python-socketio
    Internal(
        "python-socketio", _SIO_SERVER, "_engineio_server_class", OVERRIDE,
        "adapters/outgoing.py: BoundedSocketServer",
        "stock engine.io server: unbounded client queues, stock heartbeat, no frame path",
        ours="server.adapters.outgoing:BoundedSocketServer",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "eio", ATTRIBUTE,
        "adapters/outgoing.py, fanout.py, lookups.py",
        "the server does not start (AttributeError)",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "manager", ATTRIBUTE,
        "adapters/outgoing.py: _disconnect_slow; lookups.py",
        "slow-client cut, room checks and connect checks fail",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "packet_class", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.emit; outgoing.py: _disconnect_slow",
        "every emit fails (AttributeError)",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "basic_enter_room", OVERRIDE,
        "adapters/fanout.py: FanoutManager", _ROOMS,
        ours=_OURS_MANAGER, params=("sid", "namespace", "room", "eio_sid"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "basic_leave_room", OVERRIDE,
        "adapters/fanout.py: FanoutManager", _ROOMS,
        ours=_OURS_MANAGER, params=("sid", "namespace", "room"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "basic_disconnect", OVERRIDE,
        "adapters/fanout.py: FanoutManager",
        "a disconnect searches every room again (O(clients)), or leaks the room index",
        ours=_OURS_MANAGER, params=("sid", "namespace"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "rooms", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.emit; lookups.py: has_members",
        "emits fail, or go nowhere",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "callbacks", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.basic_disconnect",
        "a disconnect fails, or keeps a gone client's ack callbacks",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "pending_connect", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.basic_disconnect",
        "a client gone while connecting stays 'connecting' for ever",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "pending_disconnect", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.basic_disconnect",
        "a gone client stays 'disconnecting' for ever",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "server", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.emit", "every emit fails (AttributeError)",
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "sid_from_eio_sid", CALLED,
        "adapters/outgoing.py: _disconnect_slow",
        "a slow client is cut without its relay:overflow notice",
        params=("eio_sid", "namespace"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "eio_sid_from_sid", CALLED,
        "adapters/lookups.py: transport_open",
        "resumes and joins fail; a client gone mid-resume stays a ghost",
        params=("sid", "namespace"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "is_connected", CALLED,
        "adapters/lookups.py: is_connected",
        "a client's own 'connect'/'disconnect' event reruns the connect handler",
        params=("sid", "namespace"),
    ),
    Internal(
        "python-socketio", "socketio.async_namespace:AsyncNamespace", "server", ATTRIBUTE,
        "adapters/lookups.py: is_connected, transport_open (from sessions/handlers.py)",
        "joins, resumes and connects fail (AttributeError)",
    ),
    Internal(
        "python-socketio", "socketio.packet:Packet", "encode", CALLED,
        "adapters/fanout.py: FanoutManager.emit; outgoing.py: _disconnect_slow",
        "every emit fails",
    ),
    Internal(
        "python-socketio", "socketio.async_client:AsyncClient", "namespaces", ATTRIBUTE,
        "client/relay_client.py: RelayClient.connected",
        "the client helper never reports itself connected",
    ),
    Internal(
        "python-socketio", "socketio.async_client:AsyncClient", "reconnection_delay",
        ATTRIBUTE, "client/relay_client.py: RelayClient._on_disconnect",
        "the client helper's reconnect after a server disconnect fails",
    ),
    Internal(
        "python-socketio", "socketio.async_client:AsyncClient", "reconnection_delay_max",
        ATTRIBUTE, "client/relay_client.py: RelayClient._on_disconnect",
        "the client helper's reconnect after a server disconnect fails",
    ),
    # python-engineio
    Internal(
        "python-engineio", "engineio.base_server:BaseServer", "_async", ATTRIBUTE,
        "adapters/outgoing.py: BoundedEngineIO.__init__",
        "the server does not start; or, without its 'websocket' entry, " + _NO_FRAMES,
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "_upgrade_websocket", BEHAVIOUR,
        "adapters/outgoing.py: BoundedEngineIO.__init__ (replaces the 'websocket' entry)",
        "FrameWebSocket unused: " + _NO_FRAMES + ", and every PONG wakes the app",
        source="self.server._async['websocket']",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "_trigger_event", OVERRIDE,
        "adapters/outgoing.py: BoundedEngineIO",
        "sockets stay stock (a task per client per ping); long-poll closes wait ~30 s",
        ours=_OURS_EIO, params=("event",),
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "_handle_connect", BEHAVIOUR,
        "adapters/outgoing.py: BoundedEngineIO._trigger_event (adopts the socket)",
        "sockets stay stock: a task per client per ping interval",
        source="self._trigger_event('connect'",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "close", BEHAVIOUR,
        "adapters/outgoing.py: BoundedEngineIO._trigger_event (ends a long poll)",
        "a long-polling client's close waits for its ping timeout",
        source="'disconnect', self.sid",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "sockets", ATTRIBUTE,
        "adapters/outgoing.py (BoundedSocketServer.session_count); lookups.py: transport_open",
        "fan-out, slow-client cut and resumes fail",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "ping_interval", ATTRIBUTE,
        "adapters/transport.py: HeartbeatSocket", "no heartbeat: clients are never pinged",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "ping_timeout", ATTRIBUTE,
        "adapters/transport.py, outgoing.py: send_packet_now",
        "no heartbeat deadline: dead clients are never cut",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "max_http_buffer_size", ATTRIBUTE,
        "adapters/transport.py: HeartbeatSocket._frame",
        "every websocket read fails: clients are cut at once",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "logger", ATTRIBUTE,
        "adapters/transport.py: HeartbeatSocket", "websocket connects fail",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "_websocket_handler", OVERRIDE,
        "adapters/transport.py: HeartbeatSocket",
        "stock transport: 3 waits per client per ping, PONGs through the app, " + _NO_FRAMES,
        ours=_OURS_SOCKET, params=("ws",),
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "schedule_ping", OVERRIDE,
        "adapters/transport.py: HeartbeatSocket; wsprotocol.py (on_pong)",
        "a sleeping task per client per ping interval instead of a timer",
        ours=_OURS_SOCKET,
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "receive", BEHAVIOUR,
        "adapters/transport.py: HeartbeatSocket.schedule_ping (long-polling PONGs)",
        "long-polling clients are never pinged again, and cut at their deadline",
        source="self.schedule_ping()",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "close", OVERRIDE,
        "adapters/transport.py: HeartbeatSocket",
        "a socket closed elsewhere leaves its timer and its websocket open",
        ours=_OURS_SOCKET, params=("wait", "abort", "reason"),
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "send", CALLED,
        "adapters/outgoing.py: send_packet_now", "a client past its ping deadline is not cut",
        params=("pkt",),
    ),
    *(
        Internal(
            "python-engineio", _EIO_SOCKET, name, ATTRIBUTE,
            "adapters/transport.py, outgoing.py, lookups.py", _SOCKET_STATE,
        )
        for name in (
            "server", "sid", "queue", "last_ping", "connected", "upgrading", "upgraded",
            "closing", "closed",
        )
    ),
    Internal(
        "python-engineio", _EIO_WS, "__call__", OVERRIDE,
        "adapters/fanout.py: FrameWebSocket", _NO_FRAMES,
        ours="server.adapters.fanout:FrameWebSocket", params=("environ",),
    ),
    Internal(
        "python-engineio", "engineio.async_drivers.asgi", "translate_request", BEHAVIOUR,
        "adapters/fanout.py: FrameWebSocket.__call__ (environ['asgi.scope'])", _NO_FRAMES,
        source="'asgi.scope': scope",
    ),
    *(
        Internal(
            "python-engineio", _EIO_WS, name, CALLED,
            "adapters/transport.py: HeartbeatSocket", "every websocket client fails",
        )
        for name in ("wait", "send", "close")
    ),
    *(
        Internal(
            "python-engineio", _EIO_PACKET, name, ATTRIBUTE,
            "adapters/outgoing.py, transport.py, fanout.py", "emits and reads fail",
        )
        for name in ("packet_type", "data", "binary")
    ),
    Internal(
        "python-engineio", _EIO_PACKET, "encode", CALLED,
        "adapters/fanout.py: text_frame; transport.py", "emits fail",
    ),
    *(
        Internal(
            "python-engineio", "engineio.exceptions", name, ATTRIBUTE,
            "adapters/transport.py: HeartbeatSocket._read",
            "the websocket reader fails to import",
        )
        for name in ("SocketIsClosedError", "UnknownPacketError")
    ),
    # uvicorn
    *(
        Internal(
            "uvicorn", _UV_WS, name, OVERRIDE,
            "adapters/wsprotocol.py: _WebSocketProtocol", breaks, ours=_OURS_WS, params=params
        )
        for name, params, breaks in (
            ("handle_text", ("event",), "every PONG wakes the app again (a task per ping)"),
            ("handle_connect", ("event",), "no frame writer in the scope: " + _NO_FRAMES),
            ("send", ("message",), "no write timeout: a client that stops reading is kept"),
            ("keepalive_timeout", (), "a client not answering pings is kept until it reads"),
        )
    ),
    Internal(
        "uvicorn", _UV_WS, "scope", ATTRIBUTE,
        "adapters/wsprotocol.py: _WebSocketProtocol.handle_connect", _NO_FRAMES,
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
    *(
        Internal(
            "uvicorn", _UV_WS, name, ATTRIBUTE,
            "adapters/wsprotocol.py: send, reset, keepalive_timeout",
            "a client that does not answer the close (or a ping) is kept",
        )
        for name in ("close_timer", "close_timeout", "pong_timer", "pending_ping_payload")
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
        "uvicorn", _UV_SERVER, "config", ATTRIBUTE,
        "adapters/uvicorn_server.py: UvicornServer.shutdown",
        "the stop fails (AttributeError)",
    ),
    # websockets
    Internal(
        "websockets", "websockets.frames:Frame", "serialize", CALLED,
        "adapters/fanout.py: text_frame", "every emit fails", params=("mask",),
    ),
    # botocore, urllib3
    Internal(
        "botocore", "botocore.client:BaseClient", "_endpoint", ATTRIBUTE,
        "worker/adapters/botocore_pools.py: pool_classes",
        "a stopping worker waits out its 20 s long poll (past honcho's 5 s)",
    ),
    Internal(
        "botocore", "botocore.endpoint:Endpoint", "http_session", ATTRIBUTE,
        "worker/adapters/botocore_pools.py: pool_classes",
        "a stopping worker waits out its 20 s long poll (past honcho's 5 s)",
    ),
    Internal(
        "botocore", "botocore.httpsession:URLLib3Session", "_pool_classes_by_scheme",
        ATTRIBUTE, "worker/adapters/botocore_pools.py: pool_classes",
        "a stopping worker waits out its 20 s long poll (past honcho's 5 s)",
    ),
    Internal(
        "botocore", "botocore.httpsession:URLLib3Session", "__init__", BEHAVIOUR,
        "worker/adapters/botocore_pools.py: wrap_connections (changes the table in place)",
        "the pools keep urllib3's classes: the long poll cannot be ended",
        source="pool_classes_by_scheme = self._pool_classes_by_scheme",
    ),
    Internal(
        "botocore", "botocore.endpoint:Endpoint", "_needs_retry", BEHAVIOUR,
        "worker/longpoll.py: LongPoll._no_retry (its caught_exception)",
        "botocore retries the poll that was ended: the stop waits for it",
        source="caught_exception=caught_exception",
    ),
    Internal(
        "urllib3", "urllib3.connectionpool:HTTPConnectionPool", "ConnectionCls", ATTRIBUTE,
        "worker/adapters/botocore_pools.py: wrap_connections",
        "the worker does not start (AttributeError)",
    ),
    Internal(
        "urllib3", "urllib3.connection:HTTPConnection", "sock", ATTRIBUTE,
        "worker/adapters/botocore_pools.py: connection_socket",
        "the long poll cannot be ended",
    ),
    # CPython
    Internal(
        "CPython", "asyncio.queues:Queue", "put", BEHAVIOUR,
        "adapters/outgoing.py: OutgoingQueue.put_nowait (engine.io awaits put)",
        "client queues are unbounded again for what engine.io puts",
        source="self.put_nowait(item)",
    ),
)
# fmt: on
