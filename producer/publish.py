"""Put events on the queue with boto3, as envelopes the worker parses with the same code.

Usage (any boto3 SQS client; ``shared.sqs.make_sqs_client(settings)`` builds the relay's)::

    from producer import publish, publish_batch
    from shared.envelope import Envelope

    message_id = publish(sqs, queue_url, "order", {"id": 7}, room="shop")
    message_id = publish(sqs, queue_url, "shipped", {"id": 7}, user="alice")  # her devices
    ids = publish_batch(sqs, queue_url, [Envelope("tick", n) for n in range(100)])
    message_id = disconnect_user(sqs, queue_url, "alice", reason="logged out")  # her devices

An event the worker could never deliver (a reserved event name, a bad room, NaN in the data)
raises :class:`shared.envelope.DecodeError` (a ``ValueError``) before anything is sent, with
the code the worker would have dead-lettered it under; boto3's own errors propagate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shared.envelope import DISCONNECT_EVENT, Envelope

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SendMessageBatch takes at most this many entries.
SQS_BATCH_MAX = 10


class PublishError(Exception):
    """SQS refused some messages of a batch; the others were sent (and will be delivered).

    ``message_ids`` has one entry per message, in order: its ``MessageId``, or None where it was
    refused; ``failures`` maps the index of each refused message to SQS's reason.
    """

    def __init__(self, message_ids: list[str | None], failures: dict[int, str]) -> None:
        first = min(failures)
        super().__init__(
            f"SQS refused {len(failures)} of {len(message_ids)} message(s); "
            f"message {first}: {failures[first]}"
        )
        self.message_ids = message_ids
        self.failures = failures


def publish(
    sqs: SQSClient,
    queue_url: str,
    event: str,
    data: Any,
    *,
    room: str | list[str] | tuple[str, ...] | None = None,
    namespace: str = "/",
    user: str | list[str] | tuple[str, ...] | None = None,
) -> str:
    """Send one event to `room` and to `user` (neither: every client of `namespace`); return
    its MessageId.

    `data` is any JSON value; a list of rooms sends the event to each of them, a list of users
    to every connection of each (its own stream, ``relay:user:<id>``). Rooms and users count
    together toward MAX_MESSAGE_ROOMS.
    """
    rooms = tuple(room) if isinstance(room, list) else room
    users = tuple(user) if isinstance(user, list) else user
    body = Envelope(event=event, data=data, room=rooms, namespace=namespace, user=users).to_body()
    return sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]


def disconnect_user(
    sqs: SQSClient,
    queue_url: str,
    user: str | list[str] | tuple[str, ...],
    reason: str | None = None,
) -> str:
    """Close every connection of `user` (or of each user of a list) on every server, after
    telling each one `reason` (at most 200 characters); return the command's MessageId.

    The relay also refuses, for DISCONNECT_REVOKE_S, connects of the user with a token issued
    before the command: to ban a user, send this and stop issuing tokens to them
    (docs/security.md). The relay's helpers do not reconnect after it.
    """
    users = tuple(user) if isinstance(user, list) else user
    data = None if reason is None else {"reason": reason}
    body = Envelope(event=DISCONNECT_EVENT, data=data, user=users).to_body()
    return sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]


def publish_batch(sqs: SQSClient, queue_url: str, envelopes: Iterable[Envelope]) -> list[str]:
    """Send envelopes, ten per SendMessageBatch call; return their MessageIds in order.

    All are encoded before the first is sent, so a bad one sends none. Raises
    :class:`PublishError` when SQS refused some (after trying every batch).
    """
    return send_bodies(sqs, queue_url, [envelope.to_body() for envelope in envelopes])


def send_bodies(sqs: SQSClient, queue_url: str, bodies: Sequence[str]) -> list[str]:
    """Send message bodies as they are, ten per SendMessageBatch call; return their MessageIds.

    For payloads that are not envelopes: the worker emits any other JSON body as the default
    event, and dead-letters what is not JSON. Raises :class:`PublishError` when SQS refused
    some (after trying every batch).
    """
    message_ids: list[str | None] = []
    failures: dict[int, str] = {}
    for start in range(0, len(bodies), SQS_BATCH_MAX):
        chunk = bodies[start : start + SQS_BATCH_MAX]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(chunk)],
        )
        sent = {int(entry["Id"]): entry["MessageId"] for entry in response.get("Successful", [])}
        refused = {int(entry["Id"]): entry for entry in response.get("Failed", [])}
        for n in range(len(chunk)):
            if n not in sent:
                failures[start + n] = _reason(refused.get(n))
            message_ids.append(sent.get(n))
    if failures:
        raise PublishError(message_ids, failures)
    return [message_id for message_id in message_ids if message_id is not None]


def _reason(failed: Any) -> str:
    if failed is None:
        return "missing from SQS's answer"
    code = str(failed.get("Code", "failed"))
    return f"{code}: {failed['Message']}" if failed.get("Message") else code
