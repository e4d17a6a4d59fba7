"""`python -m server`: uvicorn serving the Socket.IO ASGI app on HOST:PORT."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys

from server.adapters.imports import leave_out_unused
from shared.settings import SettingsError
from shared.startup import start

logger = logging.getLogger("server")

#: File descriptors kept for everything but clients (logs, Redis, ZeroMQ, the SQS client) when
#: CLIENT_MAX_CONNECTIONS is 0: the connection cap is the open files limit less these.
FILES_KEPT = 256

DESCRIPTION = """\
Serve the Socket.IO relay on HOST:PORT (honcho sets PORT): the demo page at /, /healthz,
/metrics, and every event the workers hand over on ZMQ_BIND. Installed as the command
sqs-relay-server. Settings come from the environment and a .env file in the current folder,
none on the command line: each is listed with its default in the repository's .env.example
and docs/settings.md. SIGTERM/SIGINT stop it within SHUTDOWN_TIMEOUT_S.
"""


def raise_file_limit() -> int:
    """Every client is a file descriptor: the soft limit (often 1,024) raised to the hard
    one, which needs no privilege. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logger.info("Open files limit raised from %d to %d (one per client)", soft, hard)
    return hard


def main(argv: list[str] | None = None) -> int:
    settings = start("server", DESCRIPTION, argv)
    if settings is None:
        return 2
    # Imported once the settings say what this server runs (python-socketio's optional parts,
    # Redis outside cluster mode, left out: server/adapters/imports.py).
    left_out = leave_out_unused(
        cluster=settings.cluster, tracing=settings.otel_traces_exporter != "none"
    )
    import uvicorn

    from server.adapters.httpprotocol import http_protocol
    from server.adapters.refusals import Refusals
    from server.adapters.uvicorn_server import UvicornServer
    from server.adapters.wsprotocol import quiet_connection_lines, websocket_protocol
    from server.outgoing.coalesce import FrameCoalescer
    from server.relay import Relay
    from server.web.app import create_app
    from server.web.assets import AssetError, ensure_client_bundle

    logger.debug("Not loaded, as this server never runs them: %s", ", ".join(left_out))
    quiet_connection_lines()
    file_limit = raise_file_limit()
    try:
        ensure_client_bundle()
    except AssetError as exc:
        logger.warning("The demo page will not connect: %s (run: python -m server.web.assets)", exc)
    try:
        relay = Relay(settings)
    except SettingsError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return 2
    # Hostile connections (docs/security.md): the largest client message, a deadline for
    # request headers, a cap on open connections; counted and logged once per address.
    refusals = Refusals(relay.counters)
    relay.sio.limit_messages(settings.client_message_max_bytes)
    max_connections = settings.client_max_connections or max(file_limit - FILES_KEPT, 64)
    config = uvicorn.Config(
        create_app(relay),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        # adapters/wsprotocol.py; a connection's frames of one loop pass in one write
        # (server/outgoing/coalesce.py)
        ws=websocket_protocol(settings.client_write_timeout_s, refusals, FrameCoalescer()),
        ws_max_size=settings.client_message_max_bytes,
        http=http_protocol(  # server/adapters/httpprotocol.py
            header_timeout_s=settings.client_header_timeout_s,
            max_connections=max_connections,
            refusals=refusals,
        ),
        # Off, as in Node's Socket.IO: a compressor per client costs ~40 KB of memory and CPU
        # per frame, and the fan-out's frames are made once for everyone
        # (server/adapters/fanout.py, frame_websocket.py).
        ws_per_message_deflate=False,
        # Off: engine.io's heartbeat (CLIENT_PING_INTERVAL_S) already finds a dead client, and
        # uvicorn's own WebSocket ping doubled it with a timer, a frame and a PONG per client
        # every 20 s (5,000 idle clients: 5.7% of a core, 3.4% without; Node's socket.io
        # sends none).
        ws_ping_interval=None,
        # Connections waiting to be accepted in a connect storm; the kernel caps it at
        # net.core.somaxconn (README, "Many clients").
        backlog=65535,
        # timeout_graceful_shutdown: set when the stop begins, to what its deadline leaves
    )
    server = UvicornServer(config, stopping=relay, shutdown_timeout_s=settings.shutdown_timeout_s)
    relay.collector.take_over(settings.gc_young_threshold, server.open_connections)
    server.run()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # exiting already: stay a clean exit
    # uvicorn returns normally even when start-up failed; say so with its exit code.
    code = 0 if server.serving else 3
    # Everything is closed. What the interpreter would still do is free every module, which
    # on a busy machine can run past the stop's deadline. Skip it, as the worker does; the
    # logs are flushed first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
