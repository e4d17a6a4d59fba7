"""The other libraries' internals we use: websockets (the frame the fan-out writes), botocore
and urllib3 (the worker's long poll)."""

from __future__ import annotations

from server.adapters.contract.record import ATTRIBUTE, BEHAVIOUR, CALLED, Internal

# fmt: off
OTHERS: tuple[Internal, ...] = (
    # websockets
    Internal(
        "websockets", "websockets.frames:Frame", "serialize", CALLED,
        "adapters/frame_websocket.py: text_frame", "every emit fails", params=("mask",),
    ),
    Internal(
        "websockets", "websockets.protocol:Protocol", "parser_exc", ATTRIBUTE,
        "adapters/wsprotocol.py: _WebSocketProtocol.data_received",
        "a message past CLIENT_MESSAGE_MAX_BYTES is refused uncounted and unlogged",
        set_in="__init__",
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
)
# fmt: on
