"""python-engineio's internals we use."""

from __future__ import annotations

from server.adapters.contract.record import (
    ATTRIBUTE,
    BEHAVIOUR,
    CALLED,
    NO_FRAMES,
    OVERRIDE,
    Internal,
)

_EIO_SERVER = "engineio.async_server:AsyncServer"
_EIO_SOCKET = "engineio.async_socket:AsyncSocket"
_EIO_WS = "engineio.async_drivers.asgi:WebSocket"
_EIO_PACKET = "engineio.packet:Packet"
_OURS_EIO = "server.adapters.engineio_server:BoundedEngineIO"
_OURS_SOCKET = "server.adapters.transport:HeartbeatSocket"
_SOCKET_STATE = "the heartbeat, websocket transport and slow-client cut misread the socket"

# fmt: off
ENGINEIO: tuple[Internal, ...] = (
    Internal(
        "python-engineio", "engineio.base_server:BaseServer", "_async", ATTRIBUTE,
        "adapters/engineio_server.py: BoundedEngineIO.__init__",
        "the server does not start; or, without its 'websocket' entry, " + NO_FRAMES,
    ),
    Internal(
        "python-engineio", "engineio.async_server:AsyncServer", "handle_request", BEHAVIOUR,
        "adapters/engineio_server.py: BoundedEngineIO.__init__ (replaces the "
        "'translate_request' entry with adapters/asgi_environ.py's)",
        "a class made per request again (~8 % of a connect's CPU)",
        source="self._async['translate_request']",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "_upgrade_websocket", BEHAVIOUR,
        "adapters/engineio_server.py: BoundedEngineIO.__init__ (replaces the 'websocket' entry)",
        "FrameWebSocket unused: " + NO_FRAMES + ", and every PONG wakes the app",
        source="self.server._async['websocket']",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "_trigger_event", OVERRIDE,
        "adapters/engineio_server.py: BoundedEngineIO",
        "sockets stay stock (a task per client per ping); long-poll closes wait ~30 s",
        ours=_OURS_EIO, params=("event",),
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "_handle_connect", BEHAVIOUR,
        "adapters/engineio_server.py: BoundedEngineIO._trigger_event (adopts the socket)",
        "sockets stay stock: a task per client per ping interval",
        source="self._trigger_event('connect'",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "close", BEHAVIOUR,
        "adapters/engineio_server.py: BoundedEngineIO._trigger_event (ends a long poll)",
        "a long-polling client's close waits for its ping timeout",
        source="'disconnect', self.sid",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "sockets", ATTRIBUTE,
        "adapters/engineio_server.py, socketio_server.py: session_count; "
        "lookups.py: client_socket",
        "fan-out, slow-client cut and resumes fail",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "ping_interval", ATTRIBUTE,
        "adapters/transport.py: HeartbeatSocket", "no heartbeat: clients are never pinged",
    ),
    Internal(
        "python-engineio", _EIO_SERVER, "ping_timeout", ATTRIBUTE,
        "adapters/transport.py, engineio_server.py: send_packet_now",
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
        "stock transport: 3 waits per client per ping, PONGs through the app, " + NO_FRAMES,
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
        "python-engineio", _EIO_SOCKET, "poll", OVERRIDE,
        "adapters/transport.py: HeartbeatSocket",
        "a long poll answers every packet queued: python clients drop past 16",
        ours=_OURS_SOCKET,
    ),
    Internal(
        "python-engineio", "engineio.payload:Payload", "max_decode_packets", ATTRIBUTE,
        "adapters/transport.py: POLL_MAX_PACKETS",
        "the server does not start",
    ),
    Internal(
        "python-engineio", _EIO_SOCKET, "send", CALLED,
        "adapters/engineio_server.py: send_packet_now",
        "a client past its ping deadline is not cut",
        params=("pkt",),
    ),
    *(
        Internal(
            "python-engineio", _EIO_SOCKET, name, ATTRIBUTE,
            "adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py",
            _SOCKET_STATE,
        )
        for name in (
            "server", "sid", "queue", "last_ping", "connected", "upgrading", "upgraded",
            "closing", "closed",
        )
    ),
    Internal(
        "python-engineio", _EIO_WS, "__call__", OVERRIDE,
        "adapters/frame_websocket.py: FrameWebSocket", NO_FRAMES,
        ours="server.adapters.frame_websocket:FrameWebSocket", params=("environ",),
    ),
    Internal(
        "python-engineio", "engineio.async_drivers.asgi", "translate_request", BEHAVIOUR,
        "adapters/frame_websocket.py: FrameWebSocket.__call__ (environ['asgi.scope'])", NO_FRAMES,
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
            "adapters/transport.py; outgoing/queue.py", "emits and reads fail",
        )
        for name in ("packet_type", "data", "binary")
    ),
    Internal(
        "python-engineio", _EIO_PACKET, "encode", CALLED,
        "adapters/frame_websocket.py: text_frame; transport.py", "emits fail",
    ),
    *(
        Internal(
            "python-engineio", "engineio.exceptions", name, ATTRIBUTE,
            "adapters/transport.py: HeartbeatSocket._read, poll",
            "the websocket reader fails to import",
        )
        for name in ("SocketIsClosedError", "UnknownPacketError", "QueueEmpty")
    ),
    # Its clients' optional packages: imported under `except ImportError`, checked when a
    # client connects; the server leaves them out.
    *(
        Internal(
            "python-engineio", owner, name, BEHAVIOUR,
            "adapters/imports.py: leave_out_unused",
            "python-engineio fails to import in the server: it does not start", source=source,
        )
        for owner, name, source in (
            ("engineio.async_client:AsyncClient", "_connect_polling", "if aiohttp is None"),
            ("engineio.client:Client", "_connect_polling", "if requests is None"),
            ("engineio.client:Client", "_connect_websocket", "if websocket is None"),
        )
    ),
)
# fmt: on
