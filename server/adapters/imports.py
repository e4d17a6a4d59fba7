"""Keeping what a server never runs out of its memory: python-socketio's optional imports.

`import socketio` imports every client and message-queue manager the package has, and with
them, when they are installed, aiohttp and requests (engine.io's clients), websocket-client,
redis and valkey (the Redis managers), kombu, aio-pika and kafka. The relay's server uses
none of them: it is never a Socket.IO client, and cluster mode has its own Redis code
(server/history/cluster.py). Both libraries guard those imports with ``except ImportError``
and check for None only when a client or manager is used (listed in this package's table), so
a name set to None in `sys.modules` first, which makes its import raise ImportError, keeps it
out. redis stays in for cluster mode; boto3 is imported by the parts that use it only
(thread mode, the presence events' sender, the demo's send button).

Measured on the 2-core machine (`python -m server`, AUTH=none, no Redis, the median of three
starts each): idle RSS 93.4 MB before, 63.1 MB with these left out and Redis, boto3 and the
worker's code imported only where used (CHANGELOG.md, 2026-12-03).
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)

#: Imported by python-socketio and python-engineio only for what the server never uses.
NEVER_USED = ("aiohttp", "requests", "websocket", "valkey", "kombu", "aio_pika", "kafka")


def leave_out_unused(*, cluster: bool, tracing: bool = False) -> list[str]:
    """Before socketio is first imported: make the packages the server never uses look
    absent: redis too outside cluster mode; requests is kept with traces on (OTLP/HTTP's
    exporter sends with it). Returns the names left out; none once socketio is imported
    already (too late)."""
    if "socketio" in sys.modules or "engineio" in sys.modules:
        logger.debug("python-socketio is imported already: nothing left out")
        return []
    keep = {"redis"} if cluster else set()
    if tracing:
        keep.add("requests")
    names = [name for name in (*NEVER_USED, "redis") if name not in keep]
    left_out = [name for name in names if name not in sys.modules]
    for name in left_out:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    return left_out
