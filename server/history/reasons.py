"""Why a resume is not a full recovery, and why a message cannot reach clients: each text
once, for both histories (clients read the resume reasons in their answers,
docs/protocol.md, "Replay on reconnect")."""

from __future__ import annotations

import logging

import orjson

from server.payload import encode_data
from shared import counters as c
from shared.counters import Counters
from shared.wire import Delivery

logger = logging.getLogger(__name__)

SINCE_NOT_AN_OBJECT = "'since' must be an object with 'epoch' and 'offset'"

# A resume the history cannot serve *now* (cluster mode): nothing is known to be lost, so the
# answer says ``retry`` (shared.envelope.RESUME_RETRY) and gives the client's own position
# back; the helpers resume again, backing off, until it is served.
#: Redis could not be asked.
HISTORY_UNAVAILABLE = "the shared history is unavailable: try again"
#: This server's feed reader did not reach what the history showed in time.
FEED_BEHIND = "this server is behind the shared feed: try again"


def offset_error(offset: object) -> str | None:
    """Why ``offset`` is not one a client may resume from, or None."""
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return f"offset must be a non-negative integer, got {offset!r:.40}"
    return None


def ahead_of_stream(offset: int, last: int) -> str:
    return f"offset {offset} is ahead of the stream (last is {last})"


def restarted(epoch: object, ours: str) -> str:
    """A local history's answer to another epoch: this server restarted since."""
    return f"epoch {epoch!r:.40} is not this server's ({ours}): it restarted since"


def too_big(size: int | None = None) -> str:
    """More than the resume's byte budget was missed (``size``: how much, when known)."""
    missed = f"missed {size} bytes, more" if size is not None else "missed more bytes"
    return (
        f"{missed} than one resume may replay (RESUME_MAX_BYTES, "
        "RESUME_MAX_BYTES_PER_CONNECTION): resync"
    )


def encoded_for_clients(
    delivery: Delivery, counters: Counters
) -> tuple[orjson.Fragment, int] | None:
    """The delivery's data encoded once (:func:`server.payload.encode_data`) and its size; None,
    counted and logged, when clients cannot be sent it (SQS redelivers it and its redrive policy
    dead-letters it)."""
    try:
        return encode_data(delivery.envelope.data)
    except ValueError as exc:
        counters.inc(c.EMIT_FAILED)
        logger.error("Message %s cannot be sent to clients: %s", delivery.message_id, exc)
        return None
