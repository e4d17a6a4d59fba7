"""python-socketio's internals we use (the client helper's too)."""

from __future__ import annotations

from server.adapters.contract.record import ATTRIBUTE, BEHAVIOUR, CALLED, OVERRIDE, Internal

_SIO_SERVER = "socketio.async_server:AsyncServer"
_SIO_MANAGER = "socketio.async_manager:AsyncManager"
_OURS_MANAGER = "server.adapters.fanout:FanoutManager"
_LEFT_OUT = "python-socketio fails to import in the server: it does not start"
_ROOMS = "the per-client room index: a leaving client keeps rooms, or emits miss clients"

# fmt: off
SOCKETIO: tuple[Internal, ...] = (
    Internal(
        "python-socketio", _SIO_SERVER, "_handle_eio_message", OVERRIDE,
        "adapters/socketio_server.py: BoundedSocketServer",
        "a client that breaks the protocol is kept: a traceback logged per packet, binary "
        "attachments it announces kept in memory, events to other namespaces dropped uncounted",
        ours="server.adapters.socketio_server:BoundedSocketServer",
        params=("eio_sid", "data"), source="self._binary_packet",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "environ", ATTRIBUTE,
        "adapters/socketio_server.py: _disconnect_offender",
        "a protocol error's log line says 'unknown' for the client's address",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "_engineio_server_class", OVERRIDE,
        "adapters/socketio_server.py: BoundedSocketServer",
        "stock engine.io server: unbounded client queues, stock heartbeat, no frame path",
        ours="server.adapters.socketio_server:BoundedSocketServer",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "eio", ATTRIBUTE,
        "adapters/socketio_server.py, fanout.py, lookups.py",
        "the server does not start (AttributeError)",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "manager", ATTRIBUTE,
        "adapters/socketio_server.py: _disconnect_slow; lookups.py",
        "slow-client cut, room checks and connect checks fail",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "packet_class", ATTRIBUTE,
        "adapters/fanout.py: FanoutManager.emit; socketio_server.py: _disconnect_slow",
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
        "adapters/fanout.py: FanoutManager.emit; "
        "lookups.py: has_members, member_count, room_members",
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
        "adapters/socketio_server.py: _disconnect_slow",
        "a slow client is cut without its relay:overflow notice",
        params=("eio_sid", "namespace"),
    ),
    Internal(
        "python-socketio", _SIO_MANAGER, "eio_sid_from_sid", CALLED,
        "adapters/lookups.py: client_socket",
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
        "adapters/lookups.py: is_connected, client_socket (from sessions/handlers.py)",
        "joins, resumes and connects fail (AttributeError)",
    ),
    Internal(
        "python-socketio", "socketio.packet:Packet", "encode", CALLED,
        "adapters/fanout.py: FanoutManager.emit; socketio_server.py: _disconnect_slow",
        "every emit fails",
    ),
    # `import socketio` imports each manager's optional package under `except ImportError`
    # and checks it only when that manager is used: so the server leaves them out.
    *(
        Internal(
            "python-socketio", owner, name, BEHAVIOUR,
            "adapters/imports.py: leave_out_unused",
            _LEFT_OUT, source=source,
        )
        for owner, name, source in (
            ("socketio.redis_manager:RedisManager", "_get_redis_module",
             "if redis is None or RedisError is None"),
            ("socketio.redis_manager:RedisManager", "_get_redis_module",
             "if valkey is None or ValkeyError is None"),
            ("socketio.async_redis_manager:AsyncRedisManager", "_get_redis_module",
             "if aioredis is None or RedisError is None"),
            ("socketio.kombu_manager:KombuManager", "__init__", "if kombu is None"),
            ("socketio.kafka_manager:KafkaManager", "__init__", "if kafka is None"),
            ("socketio.async_aiopika_manager:AsyncAioPikaManager", "__init__",
             "if aio_pika is None"),
        )
    ),
)
# fmt: on

_ADMIN = "socketio.async_admin:InstrumentedAsyncServer"

# fmt: off
ADMIN: tuple[Internal, ...] = (
    Internal(
        "python-socketio", _SIO_SERVER, "handlers", ATTRIBUTE,
        "adapters/admin.py: AdminUI.instrument (an empty '/' entry)",
        "the Admin UI's dashboard lists no clients' namespace",
    ),
    Internal(
        "python-socketio", _SIO_SERVER, "_handle_connect", BEHAVIOUR,
        "adapters/admin.py: AdminUI._forget_refused_connects (wraps the server's _trigger_event)",
        "development mode: refused clients stay listed in the Admin UI, their times kept",
        source="success = await self._trigger_event(",
    ),
    Internal(
        "python-socketio", _ADMIN, "_trigger_event", BEHAVIOUR,
        "adapters/admin.py: AdminUI._forget_refused_connects (pops manager._timestamps)",
        "development mode: refused clients stay listed in the Admin UI, their times kept",
        source="self.sio.manager._timestamps[sid] = t",
    ),
    Internal(
        "python-socketio", _ADMIN, "stats_task", ATTRIBUTE,
        "adapters/admin.py: AdminUI.close",
        "the Admin UI's statistics task outlives the relay's stop (cancelled with the loop)",
        set_in="_handle_eio_connect",
    ),
)
# fmt: on
