# ruff: noqa: E501
"""Our adapters of python-socketio, python-engineio and uvicorn: every subclass of theirs and
every read of their internals is in this package (the worker's botocore ones are in
worker/adapters/). Code elsewhere calls what these modules offer, e.g.
server/adapters/lookups.py's `has_members`, not the libraries' internals; the one read left
outside (the outgoing queue's, of engine.io's packets) is in the table too. The client
helper (client/, its own distribution) reads no library internals.

- `fanout.py`: python-socketio's manager: one encode per emit, each client's rooms kept.
- `socketio_server.py`: python-socketio's server: bounded client queues, slow clients cut,
  clients that break the protocol cut once.
- `engineio_server.py`: python-engineio's server: the queue, socket and websocket it makes.
- `transport.py`: python-engineio's socket, the client's owner: the heartbeat on timers, the
  websocket transport, long-poll answers any engine.io client decodes.
- `frame_websocket.py`: python-engineio's ASGI websocket, and a packet's frame made once.
- `wsprotocol.py`: uvicorn's websocket protocol: write timeout, direct frames, PONGs,
  oversized messages counted.
- `uvicorn_server.py`: uvicorn's server: one deadline for the whole stop.
- `httpprotocol.py`: uvicorn's HTTP protocol: a header timeout and a connection cap.
- `refusals.py`: a hostile connection's refusal counted once, logged once per address.
- `lookups.py`: what python-socketio knows about a client or a room, for code outside.
- `admin.py`: python-socketio's `instrument()` for the Socket.IO Admin UI, on its own namespace.
- `asgi_environ.py`: the request environ python-engineio reads, made without a class per request.
- `imports.py`: python-socketio's optional packages (clients, other managers) left out of the server.
- `contract/`: the records of every library internal used, rendered as the table below.

Library internals the project relies on
=======================================

One row per name that starts with an underscore or that the library does not document
(python-socketio and python-engineio document only what has a docstring; uvicorn documents
its settings, not its protocol classes), and per library behaviour relied on. Kept beside
the records in server/adapters/contract/, which tests/server/test_library_contract.py
checks against the installed libraries (and this table against the records: the test
prints the table to paste after a change). "verified": the lowest version the contract
test passes on, and the installed one, on which the whole suite runs (pyproject.toml's
bounds). "used in": paths under server/ unless they say worker/.

| library | name | kind | used in | verified | breaks if it goes |
|---|---|---|---|---|---|
| python-socketio | `AsyncServer._handle_eio_message` | private method overridden | adapters/socketio_server.py: BoundedSocketServer | 5.18.0-5.18.1 | a client that breaks the protocol is kept: a traceback logged per packet, binary attachments it announces kept in memory, events to other namespaces dropped uncounted |
| python-socketio | `AsyncServer.environ` | undoc. attribute | adapters/socketio_server.py: _disconnect_offender | 5.18.0-5.18.1 | a protocol error's log line says 'unknown' for the client's address |
| python-socketio | `AsyncServer._engineio_server_class` | private method overridden | adapters/socketio_server.py: BoundedSocketServer | 5.18.0-5.18.1 | stock engine.io server: unbounded client queues, stock heartbeat, no frame path |
| python-socketio | `AsyncServer.eio` | undoc. attribute | adapters/socketio_server.py, fanout.py, lookups.py | 5.18.0-5.18.1 | the server does not start (AttributeError) |
| python-socketio | `AsyncServer.manager` | undoc. attribute | adapters/socketio_server.py: _disconnect_slow; lookups.py | 5.18.0-5.18.1 | slow-client cut, room checks and connect checks fail |
| python-socketio | `AsyncServer.packet_class` | undoc. attribute | adapters/fanout.py: FanoutManager.emit; socketio_server.py: _disconnect_slow | 5.18.0-5.18.1 | every emit fails (AttributeError) |
| python-socketio | `AsyncManager.basic_enter_room` | undoc. method overridden | adapters/fanout.py: FanoutManager | 5.18.0-5.18.1 | the per-client room index: a leaving client keeps rooms, or emits miss clients |
| python-socketio | `AsyncManager.basic_leave_room` | undoc. method overridden | adapters/fanout.py: FanoutManager | 5.18.0-5.18.1 | the per-client room index: a leaving client keeps rooms, or emits miss clients |
| python-socketio | `AsyncManager.basic_disconnect` | undoc. method overridden | adapters/fanout.py: FanoutManager | 5.18.0-5.18.1 | a disconnect searches every room again (O(clients)), or leaks the room index |
| python-socketio | `AsyncManager.rooms` | undoc. attribute | adapters/fanout.py: FanoutManager.emit; lookups.py: has_members, member_count, room_members | 5.18.0-5.18.1 | emits fail, or go nowhere |
| python-socketio | `AsyncManager.callbacks` | undoc. attribute | adapters/fanout.py: FanoutManager.basic_disconnect | 5.18.0-5.18.1 | a disconnect fails, or keeps a gone client's ack callbacks |
| python-socketio | `AsyncManager.pending_connect` | undoc. attribute | adapters/fanout.py: FanoutManager.basic_disconnect | 5.18.0-5.18.1 | a client gone while connecting stays 'connecting' for ever |
| python-socketio | `AsyncManager.pending_disconnect` | undoc. attribute | adapters/fanout.py: FanoutManager.basic_disconnect | 5.18.0-5.18.1 | a gone client stays 'disconnecting' for ever |
| python-socketio | `AsyncManager.server` | undoc. attribute | adapters/fanout.py: FanoutManager.emit | 5.18.0-5.18.1 | every emit fails (AttributeError) |
| python-socketio | `AsyncManager.sid_from_eio_sid` | undoc. method called | adapters/socketio_server.py: _disconnect_slow | 5.18.0-5.18.1 | a slow client is cut without its relay:overflow notice |
| python-socketio | `AsyncManager.eio_sid_from_sid` | undoc. method called | adapters/lookups.py: client_socket | 5.18.0-5.18.1 | resumes and joins fail; a client gone mid-resume stays a ghost |
| python-socketio | `AsyncManager.is_connected` | undoc. method called | adapters/lookups.py: is_connected | 5.18.0-5.18.1 | a client's own 'connect'/'disconnect' event reruns the connect handler |
| python-socketio | `AsyncNamespace.server` | undoc. attribute | adapters/lookups.py: is_connected, client_socket (from sessions/handlers.py) | 5.18.0-5.18.1 | joins, resumes and connects fail (AttributeError) |
| python-socketio | `Packet.encode` | undoc. method called | adapters/fanout.py: FanoutManager.emit; socketio_server.py: _disconnect_slow | 5.18.0-5.18.1 | every emit fails |
| python-socketio | `RedisManager._get_redis_module` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `RedisManager._get_redis_module` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `AsyncRedisManager._get_redis_module` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `KombuManager.__init__` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `KafkaManager.__init__` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `AsyncAioPikaManager.__init__` | behaviour | adapters/imports.py: leave_out_unused | 5.18.0-5.18.1 | python-socketio fails to import in the server: it does not start |
| python-socketio | `AsyncServer.handlers` | undoc. attribute | adapters/admin.py: AdminUI.instrument (an empty '/' entry) | 5.18.0-5.18.1 | the Admin UI's dashboard lists no clients' namespace |
| python-socketio | `AsyncServer._handle_connect` | behaviour | adapters/admin.py: AdminUI._forget_refused_connects (wraps the server's _trigger_event) | 5.18.0-5.18.1 | development mode: refused clients stay listed in the Admin UI, their times kept |
| python-socketio | `InstrumentedAsyncServer._trigger_event` | behaviour | adapters/admin.py: AdminUI._forget_refused_connects (pops manager._timestamps) | 5.18.0-5.18.1 | development mode: refused clients stay listed in the Admin UI, their times kept |
| python-socketio | `InstrumentedAsyncServer.stats_task` | undoc. attribute | adapters/admin.py: AdminUI.close | 5.18.0-5.18.1 | the Admin UI's statistics task outlives the relay's stop (cancelled with the loop) |
| python-engineio | `BaseServer._async` | private attribute | adapters/engineio_server.py: BoundedEngineIO.__init__ | 4.11.0-4.15.1 | the server does not start; or, without its 'websocket' entry, no direct frame path: every packet goes through the writer task |
| python-engineio | `AsyncServer.handle_request` | behaviour | adapters/engineio_server.py: BoundedEngineIO.__init__ (replaces the 'translate_request' entry with adapters/asgi_environ.py's) | 4.11.0-4.15.1 | a class made per request again (~8 % of a connect's CPU) |
| python-engineio | `AsyncSocket._upgrade_websocket` | behaviour | adapters/engineio_server.py: BoundedEngineIO.__init__ (replaces the 'websocket' entry) | 4.11.0-4.15.1 | FrameWebSocket unused: no direct frame path: every packet goes through the writer task, and every PONG wakes the app |
| python-engineio | `AsyncServer._trigger_event` | private method overridden | adapters/engineio_server.py: BoundedEngineIO | 4.11.0-4.15.1 | sockets stay stock (a task per client per ping); long-poll closes wait ~30 s |
| python-engineio | `AsyncServer._handle_connect` | behaviour | adapters/engineio_server.py: BoundedEngineIO._trigger_event (adopts the socket) | 4.11.0-4.15.1 | sockets stay stock: a task per client per ping interval |
| python-engineio | `AsyncSocket.close` | behaviour | adapters/engineio_server.py: BoundedEngineIO._trigger_event (ends a long poll) | 4.11.0-4.15.1 | a long-polling client's close waits for its ping timeout |
| python-engineio | `AsyncServer.sockets` | undoc. attribute | adapters/engineio_server.py, socketio_server.py: session_count; lookups.py: client_socket | 4.11.0-4.15.1 | fan-out, slow-client cut and resumes fail |
| python-engineio | `AsyncServer.ping_interval` | undoc. attribute | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | no heartbeat: clients are never pinged |
| python-engineio | `AsyncServer.ping_timeout` | undoc. attribute | adapters/transport.py, engineio_server.py: send_packet_now | 4.11.0-4.15.1 | no heartbeat deadline: dead clients are never cut |
| python-engineio | `AsyncServer.max_http_buffer_size` | undoc. attribute | adapters/transport.py: HeartbeatSocket._frame | 4.11.0-4.15.1 | every websocket read fails: clients are cut at once |
| python-engineio | `AsyncServer.logger` | undoc. attribute | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | websocket connects fail |
| python-engineio | `AsyncSocket._websocket_handler` | private method overridden | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | stock transport: 3 waits per client per ping, PONGs through the app, no direct frame path: every packet goes through the writer task |
| python-engineio | `AsyncSocket.schedule_ping` | undoc. method overridden | adapters/transport.py: HeartbeatSocket; wsprotocol.py (on_pong) | 4.11.0-4.15.1 | a sleeping task per client per ping interval instead of a timer |
| python-engineio | `AsyncSocket.receive` | behaviour | adapters/transport.py: HeartbeatSocket.schedule_ping (long-polling PONGs) | 4.11.0-4.15.1 | long-polling clients are never pinged again, and cut at their deadline |
| python-engineio | `AsyncSocket.close` | undoc. method overridden | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | a socket closed elsewhere leaves its timer and its websocket open |
| python-engineio | `AsyncSocket.poll` | undoc. method overridden | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | a long poll answers every packet queued: python clients drop past 16 |
| python-engineio | `Payload.max_decode_packets` | undoc. attribute | adapters/transport.py: POLL_MAX_PACKETS | 4.11.0-4.15.1 | the server does not start |
| python-engineio | `AsyncSocket.send` | undoc. method called | adapters/engineio_server.py: send_packet_now | 4.11.0-4.15.1 | a client past its ping deadline is not cut |
| python-engineio | `AsyncSocket.server` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.sid` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.queue` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.last_ping` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.connected` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.upgrading` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.upgraded` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.closing` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `AsyncSocket.closed` | undoc. attribute | adapters/transport.py, engineio_server.py, socketio_server.py, lookups.py | 4.11.0-4.15.1 | the heartbeat, websocket transport and slow-client cut misread the socket |
| python-engineio | `WebSocket.__call__` | undoc. method overridden | adapters/frame_websocket.py: FrameWebSocket | 4.11.0-4.15.1 | no direct frame path: every packet goes through the writer task |
| python-engineio | `engineio.async_drivers.asgi.translate_request` | behaviour | adapters/frame_websocket.py: FrameWebSocket.__call__ (environ['asgi.scope']) | 4.11.0-4.15.1 | no direct frame path: every packet goes through the writer task |
| python-engineio | `WebSocket.wait` | undoc. method called | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | every websocket client fails |
| python-engineio | `WebSocket.send` | undoc. method called | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | every websocket client fails |
| python-engineio | `WebSocket.close` | undoc. method called | adapters/transport.py: HeartbeatSocket | 4.11.0-4.15.1 | every websocket client fails |
| python-engineio | `Packet.packet_type` | undoc. attribute | adapters/transport.py; outgoing/queue.py | 4.11.0-4.15.1 | emits and reads fail |
| python-engineio | `Packet.data` | undoc. attribute | adapters/transport.py; outgoing/queue.py | 4.11.0-4.15.1 | emits and reads fail |
| python-engineio | `Packet.binary` | undoc. attribute | adapters/transport.py; outgoing/queue.py | 4.11.0-4.15.1 | emits and reads fail |
| python-engineio | `Packet.encode` | undoc. method called | adapters/frame_websocket.py: text_frame; transport.py | 4.11.0-4.15.1 | emits fail |
| python-engineio | `engineio.exceptions.SocketIsClosedError` | undoc. attribute | adapters/transport.py: HeartbeatSocket._read, poll | 4.11.0-4.15.1 | the websocket reader fails to import |
| python-engineio | `engineio.exceptions.UnknownPacketError` | undoc. attribute | adapters/transport.py: HeartbeatSocket._read, poll | 4.11.0-4.15.1 | the websocket reader fails to import |
| python-engineio | `engineio.exceptions.QueueEmpty` | undoc. attribute | adapters/transport.py: HeartbeatSocket._read, poll | 4.11.0-4.15.1 | the websocket reader fails to import |
| python-engineio | `AsyncClient._connect_polling` | behaviour | adapters/imports.py: leave_out_unused | 4.11.0-4.15.1 | python-engineio fails to import in the server: it does not start |
| python-engineio | `Client._connect_polling` | behaviour | adapters/imports.py: leave_out_unused | 4.11.0-4.15.1 | python-engineio fails to import in the server: it does not start |
| python-engineio | `Client._connect_websocket` | behaviour | adapters/imports.py: leave_out_unused | 4.11.0-4.15.1 | python-engineio fails to import in the server: it does not start |
| uvicorn | `HttpToolsProtocol.connection_made` | undoc. method overridden | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | no connection cap (CLIENT_MAX_CONNECTIONS), and no header timeout: half-open and slow-header connections are kept for ever |
| uvicorn | `HttpToolsProtocol.on_message_begin` | undoc. method overridden | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | a kept-alive request has no header timeout |
| uvicorn | `HttpToolsProtocol.on_headers_complete` | undoc. method overridden | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | every connection is closed at the header timeout |
| uvicorn | `HttpToolsProtocol.connection_lost` | undoc. method overridden | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | a gone connection's header timer fires (harmless) |
| uvicorn | `HttpToolsProtocol.handle_websocket_upgrade` | undoc. method overridden | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | 14 objects (~3 KB) per WebSocket client wait for a full collection |
| uvicorn | `HttpToolsProtocol.connections` | undoc. attribute | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | no connection cap: every connect fails (AttributeError) |
| uvicorn | `HttpToolsProtocol.parser` | undoc. attribute | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | 14 objects (~3 KB) per WebSocket client wait for a full collection |
| uvicorn | `HttpToolsProtocol.loop` | undoc. attribute | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | no header timeout: half-open and slow-header connections are kept for ever (AttributeError) |
| uvicorn | `HttpToolsProtocol.transport` | undoc. attribute | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | refusals fail (AttributeError) |
| uvicorn | `HttpToolsProtocol.client` | undoc. attribute | adapters/httpprotocol.py: _HttpProtocol | 0.53.0-0.54.0 | refusals fail (AttributeError) |
| uvicorn | `WebSocketsSansIOProtocol.data_received` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | a message past CLIENT_MESSAGE_MAX_BYTES is refused uncounted and unlogged |
| uvicorn | `WebSocketsSansIOProtocol.config` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.data_received | 0.53.0-0.54.0 | an oversized message's refusal fails (AttributeError) |
| uvicorn | `WebSocketsSansIOProtocol.handle_text` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | every PONG wakes the app again (a task per ping) |
| uvicorn | `WebSocketsSansIOProtocol.handle_connect` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | no frame writer in the scope: no direct frame path: every packet goes through the writer task |
| uvicorn | `WebSocketsSansIOProtocol.send` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | no write timeout: a client that stops reading is kept |
| uvicorn | `WebSocketsSansIOProtocol.shutdown` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol (frames held by the coalescer) | 0.53.0-0.54.0 | a stopping server's close overtakes held frames: the last lost |
| uvicorn | `WebSocketsSansIOProtocol.connection_lost` | undoc. method overridden | adapters/wsprotocol.py: _WebSocketProtocol (frames held by the coalescer) | 0.53.0-0.54.0 | a gone client's held frames stay held until written |
| uvicorn | `WebSocketsSansIOProtocol.scope` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.handle_connect | 0.53.0-0.54.0 | no direct frame path: every packet goes through the writer task |
| uvicorn | `WebSocketsSansIOProtocol.close_sent` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.writable` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.handshake_complete` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.disconnected` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.initial_response` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.conn` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.transport` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.loop` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.client` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol | 0.53.0-0.54.0 | write_frame/send misjudge the connection: frames to a closed one, or none |
| uvicorn | `WebSocketsSansIOProtocol.queue` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.__init__ (a LeanQueue in its place) | 0.53.0-0.54.0 | about 3 KB more held per client (asyncio's queue, the handshake's headers) |
| uvicorn | `WebSocketsSansIOProtocol.receive` | behaviour | adapters/wsprotocol.py: _WebSocketProtocol.__init__ (what the LeanQueue must do) | 0.53.0-0.54.0 | about 3 KB more held per client (asyncio's queue, the handshake's headers) |
| uvicorn | `WebSocketsSansIOProtocol.request` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.send (let go once answered) | 0.53.0-0.54.0 | about 3 KB more held per client (asyncio's queue, the handshake's headers) |
| uvicorn | `WebSocketsSansIOProtocol.response` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.send (let go once answered) | 0.53.0-0.54.0 | about 3 KB more held per client (asyncio's queue, the handshake's headers) |
| uvicorn | `WebSocketsSansIOProtocol.send` | behaviour | adapters/wsprotocol.py: _WebSocketProtocol.send (the response is read only before) | 0.53.0-0.54.0 | the accept fails (AttributeError): no WebSocket connects |
| uvicorn | `WebSocketsSansIOProtocol.close_timer` | undoc. attribute | adapters/wsprotocol.py: send, reset | 0.53.0-0.54.0 | a client that does not answer the close is kept |
| uvicorn | `WebSocketsSansIOProtocol.close_timeout` | undoc. attribute | adapters/wsprotocol.py: send, reset | 0.53.0-0.54.0 | a client that does not answer the close is kept |
| uvicorn | `Server._captured_signals` | private attribute | adapters/uvicorn_server.py: UvicornServer.capture_signals | 0.53.0-0.54.0 | the server re-raises SIGTERM after its graceful stop: killed, not exit 0 |
| uvicorn | `Server.capture_signals` | undoc. method overridden | adapters/uvicorn_server.py: UvicornServer | 0.53.0-0.54.0 | the server re-raises SIGTERM after its graceful stop: killed, not exit 0 |
| uvicorn | `Server.handle_exit` | undoc. method overridden | adapters/uvicorn_server.py: UvicornServer | 0.53.0-0.54.0 | the stop deadline counts from shutdown, not from the signal |
| uvicorn | `Server.shutdown` | undoc. method overridden | adapters/uvicorn_server.py: UvicornServer | 0.53.0-0.54.0 | no drain before connections close: events emitted (and deleted) to nobody |
| uvicorn | `Server.started` | undoc. attribute | adapters/uvicorn_server.py: UvicornServer.serving | 0.53.0-0.54.0 | a failed start-up exits 0 instead of 3 |
| uvicorn | `Server.server_state` | undoc. attribute | adapters/uvicorn_server.py: UvicornServer.open_connections | 0.53.0-0.54.0 | the collector's backstop counts no connections: a storm's objects call for a full pass (or AttributeError) |
| uvicorn | `Server.config` | undoc. attribute | adapters/uvicorn_server.py: UvicornServer.shutdown | 0.53.0-0.54.0 | the stop fails (AttributeError) |
| uvicorn | `WebSocketsSansIOProtocol.send` | behaviour | adapters/wsprotocol.py: quiet_connection_lines (its format string) | 0.53.0-0.54.0 | a log line per WebSocket connect at INFO again |
| websockets | `Frame.serialize` | undoc. method called | adapters/frame_websocket.py: text_frame | 13.0-17.4 | every emit fails |
| websockets | `Protocol.parser_exc` | undoc. attribute | adapters/wsprotocol.py: _WebSocketProtocol.data_received | 13.0-17.4 | a message past CLIENT_MESSAGE_MAX_BYTES is refused uncounted and unlogged |
| botocore | `BaseClient._endpoint` | private attribute | worker/adapters/botocore_pools.py: pool_classes | 1.34.0-1.43.117 | a stopping worker waits out its 20 s long poll (past honcho's 5 s) |
| botocore | `Endpoint.http_session` | undoc. attribute | worker/adapters/botocore_pools.py: pool_classes | 1.34.0-1.43.117 | a stopping worker waits out its 20 s long poll (past honcho's 5 s) |
| botocore | `URLLib3Session._pool_classes_by_scheme` | private attribute | worker/adapters/botocore_pools.py: pool_classes | 1.34.0-1.43.117 | a stopping worker waits out its 20 s long poll (past honcho's 5 s) |
| botocore | `URLLib3Session.__init__` | behaviour | worker/adapters/botocore_pools.py: wrap_connections (changes the table in place) | 1.34.0-1.43.117 | the pools keep urllib3's classes: the long poll cannot be ended |
| botocore | `Endpoint._needs_retry` | behaviour | worker/longpoll.py: LongPoll._no_retry (its caught_exception) | 1.34.0-1.43.117 | botocore retries the poll that was ended: the stop waits for it |
| urllib3 | `HTTPConnectionPool.ConnectionCls` | undoc. attribute | worker/adapters/botocore_pools.py: wrap_connections | 2.0.0-2.8.0 | the worker does not start (AttributeError) |
| urllib3 | `HTTPConnection.sock` | undoc. attribute | worker/adapters/botocore_pools.py: connection_socket | 2.0.0-2.8.0 | the long poll cannot be ended |

Upstream hooks that would remove a private use: python-socketio, an `engineio_server_class`
argument (`_engineio_server_class`); python-engineio, a socket class on the server (the
`__class__` swap at `_trigger_event("connect")`), a websocket class option (`_async`), and a
public transport handler (`_websocket_handler`); a socket close callback (the disconnect in
`_trigger_event`); uvicorn, an option not to re-raise the stop signal (`_captured_signals`);
botocore, a connection class in `botocore.config.Config` (`_endpoint`,
`_pool_classes_by_scheme`).
"""
