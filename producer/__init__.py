"""The producer side: put events on the relay's SQS queue (the worker consumes them).

``publish`` for one event, ``publish_batch`` for many, ``send_bodies`` for bodies that are not
envelopes; ``python -m producer`` is the same from a shell. See :mod:`producer.publish`.
"""

from __future__ import annotations

from producer.publish import PublishError, publish, publish_batch, send_bodies

__all__ = ["PublishError", "publish", "publish_batch", "send_bodies"]
