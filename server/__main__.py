"""`python -m server`: uvicorn serving the Socket.IO ASGI app on HOST:PORT."""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn

from server.app import RelayApp, create_app
from server.assets import AssetError, ensure_client_bundle
from shared.settings import SettingsError
from shared.startup import start

logger = logging.getLogger("server")

DESCRIPTION = (
    "Serve the Socket.IO relay on HOST:PORT (honcho sets PORT) and receive messages from "
    "workers on ZMQ_BIND. Settings come from the environment and .env; see .env.example. "
    "SIGTERM/SIGINT stop it within SHUTDOWN_TIMEOUT_S."
)


class RelayServer(uvicorn.Server):
    """uvicorn's server, but consuming stops before client connections close.

    uvicorn closes connections first and runs the lifespan shutdown last; in between, the
    subscriber would emit (and confirm, so SQS deletes) events to clients already gone.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.loaded_app
        while not isinstance(app, RelayApp) and hasattr(app, "app"):
            app = app.app  # uvicorn wraps the app in its middlewares
        if isinstance(app, RelayApp):
            await app.drain()
        await super().shutdown(sockets)


def main(argv: list[str] | None = None) -> int:
    settings = start("server", DESCRIPTION, argv)
    if settings is None:
        return 2
    try:
        ensure_client_bundle()
    except AssetError as exc:
        logger.warning("The demo page will not connect: %s (run: python -m server.assets)", exc)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s) - 1),
    )
    server = RelayServer(config)
    # uvicorn re-raises the stop signal once its graceful shutdown is done, so the process
    # would end "killed by SIGTERM" (honcho: rc=-15). It re-raises into the handlers it found
    # at start; with these no-op ones a finished graceful shutdown exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # exiting already: stay a clean exit
    # uvicorn returns normally even when start-up failed; say so with its exit code.
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
