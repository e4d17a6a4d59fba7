"""The producer side: put events on the relay's SQS queue (the worker consumes them).

``publish`` for one event, ``publish_batch`` for many, ``send_bodies`` for bodies that are not
envelopes, ``disconnect_user`` to close a user's connections (logout, ban); ``python -m
producer`` is the same from a shell. See :mod:`producer.publish`.
"""

from __future__ import annotations

from producer.publish import (
    FifoError,
    PublishError,
    disconnect_user,
    publish,
    publish_batch,
    send_bodies,
)

__all__ = [
    "FifoError", "PublishError", "disconnect_user", "publish", "publish_batch", "send_bodies",
]  # fmt: skip
