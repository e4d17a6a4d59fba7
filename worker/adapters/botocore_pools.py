"""Where a boto3 client keeps its urllib3 connection-pool classes: botocore has no public
way to give a client its own connection class, and ending a long poll at once needs one
(worker/longpoll.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def pool_classes(client: Any) -> dict[str, Any] | None:
    """The client's scheme -> urllib3 pool class table, shared with its proxy managers (a
    change in place reaches them too); None for a client that is not botocore's (a test
    fake) or a botocore that keeps it elsewhere."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    pools = getattr(session, "_pool_classes_by_scheme", None)
    return pools if isinstance(pools, dict) else None


def wrap_connections(pools: dict[str, Any], wrap: Callable[[type], type]) -> None:
    """Give every pool class of `pools` (from :func:`pool_classes`) the connection class
    `wrap` makes of its own (urllib3's `ConnectionCls`), changing the table in place."""
    for scheme, pool_class in list(pools.items()):
        pools[scheme] = type(
            f"Wrapped{pool_class.__name__}",
            (pool_class,),
            {"ConnectionCls": wrap(pool_class.ConnectionCls)},
        )


def connection_socket(connection: Any) -> Any:
    """The socket of a urllib3 connection (`sock`), None before it connects or after."""
    return getattr(connection, "sock", None)
