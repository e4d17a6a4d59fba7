"""Put events on the queue with boto3, as envelopes the worker parses with the same code.

Usage (any boto3 SQS client; ``shared.sqs.make_sqs_client(settings)`` builds the relay's)::

    from producer import publish, publish_batch
    from shared.envelope import Envelope

    message_id = publish(sqs, queue_url, "order", {"id": 7}, room="shop")
    message_id = publish(sqs, queue_url, "shipped", {"id": 7}, user="alice")  # her devices
    ids = publish_batch(sqs, queue_url, [Envelope("tick", n) for n in range(100)])
    message_id = disconnect_user(sqs, queue_url, "alice", reason="logged out")  # her devices

    # A FIFO queue (its name ends .fifo): each message in a group, kept in order end to end
    publish(sqs, fifo_url, "status", {"order": 7}, room="shop", group="order-7", dedup_id="7-3")
    publish_batch(sqs, fifo_url, envelopes, group=lambda e: f"order-{e.data['order']}")

An event the worker could never deliver (a reserved event name, a bad room, NaN in the data)
raises :class:`shared.envelope.DecodeError` (a ``ValueError``) before anything is sent, with
the code the worker would have dead-lettered it under; a group for a standard queue, or none
for a FIFO queue, raises :class:`FifoError` (a ``ValueError``), also before anything is sent;
boto3's own errors propagate.

With the OpenTelemetry API installed, each SendMessage(Batch) call is a ``publish`` span and
its context goes on the messages (a ``traceparent`` attribute): an application that traces
gets each event's path through the relay in the same trace (docs/tracing.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from shared.envelope import DISCONNECT_EVENT, Envelope
from shared.tracing import message_attributes, publishing

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SendMessageBatch takes at most this many entries.
SQS_BATCH_MAX = 10

#: A group for every envelope of a batch: one for all, or one chosen per envelope.
Group = str | Callable[[Envelope], str]


class FifoError(ValueError):
    """A message group was given for a standard queue, or none for a FIFO queue (its name ends
    ``.fifo``); raised before anything is sent."""


def is_fifo(queue_url: str) -> bool:
    """Whether `queue_url` names a FIFO queue (SQS requires their names to end ``.fifo``)."""
    return queue_url.rstrip("/").endswith(".fifo")


def check_group(queue_url: str, group: object, dedup_id: object = None) -> None:
    """Raise :class:`FifoError` unless a FIFO queue gets a group and a standard one gets neither
    a group nor a de-duplication id."""
    if is_fifo(queue_url):
        if group is None:
            raise FifoError(
                f"{queue_url} is a FIFO queue: give a message group (group=..., the "
                "MessageGroupId; the relay keeps each group in order, docs/producing.md)"
            )
    elif group is not None or dedup_id is not None:
        what = "a message group" if group is not None else "a de-duplication id"
        raise FifoError(
            f"{queue_url} is a standard queue: {what} is only for a FIFO queue (a name "
            "ending .fifo)"
        )


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
    group: str | None = None,
    dedup_id: str | None = None,
    key: str | None = None,
    version: int | None = None,
) -> str:
    """Send one event to `room` and to `user` (neither: every client of `namespace`); return
    its MessageId.

    `key` names the entity the event is the state of and `version` orders its states: a state
    room (STATE_ROOMS) keeps the latest per key and drops an older version (docs/state.md).

    `data` is any JSON value; a list of rooms sends the event to each of them, a list of users
    to every connection of each (its own stream, ``relay:user:<id>``). Rooms and users count
    together toward MAX_MESSAGE_ROOMS.

    For a FIFO queue (a URL ending ``.fifo``) `group` is required: its MessageGroupId, within
    which the relay keeps the order of sending. `dedup_id` is its MessageDeduplicationId: SQS
    drops another message with the same id sent within 5 minutes; it may be left out only when
    the queue has ContentBasedDeduplication (then the body's SHA-256 is the id).
    """
    check_group(queue_url, group, dedup_id)
    rooms = tuple(room) if isinstance(room, list) else room
    users = tuple(user) if isinstance(user, list) else user
    body = Envelope(
        event=event,
        data=data,
        room=rooms,
        namespace=namespace,
        user=users,
        key=key,
        version=version,
    ).to_body()
    return _send_one(sqs, queue_url, body, group, dedup_id)


def disconnect_user(
    sqs: SQSClient,
    queue_url: str,
    user: str | list[str] | tuple[str, ...],
    reason: str | None = None,
    *,
    group: str | None = None,
    dedup_id: str | None = None,
) -> str:
    """Close every connection of `user` (or of each user of a list) on every server, after
    telling each one `reason` (at most 200 characters); return the command's MessageId.

    The relay also refuses, for DISCONNECT_REVOKE_S, connects of the user with a token issued
    before the command: to ban a user, send this and stop issuing tokens to them
    (docs/security.md). The relay's helpers do not reconnect after it. `group` and `dedup_id`
    are for a FIFO queue, as in :func:`publish`.
    """
    check_group(queue_url, group, dedup_id)
    users = tuple(user) if isinstance(user, list) else user
    data = None if reason is None else {"reason": reason}
    body = Envelope(event=DISCONNECT_EVENT, data=data, user=users).to_body()
    return _send_one(sqs, queue_url, body, group, dedup_id)


def _send_one(
    sqs: SQSClient, queue_url: str, body: str, group: str | None, dedup_id: str | None
) -> str:
    extra: dict[str, Any] = {} if group is None else {"MessageGroupId": group}
    if dedup_id is not None:
        extra["MessageDeduplicationId"] = dedup_id
    with publishing(queue_url, 1):
        if attributes := message_attributes():
            extra["MessageAttributes"] = attributes
        return sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)["MessageId"]


def publish_batch(
    sqs: SQSClient,
    queue_url: str,
    envelopes: Iterable[Envelope],
    *,
    group: Group | None = None,
    dedup_id: Callable[[Envelope], str] | None = None,
) -> list[str]:
    """Send envelopes, ten per SendMessageBatch call, in order; return their MessageIds.

    All are encoded before the first is sent, so a bad one sends none. Raises
    :class:`PublishError` when SQS refused some (after trying every batch).

    For a FIFO queue, `group` is required: one MessageGroupId for all, or a function giving
    each envelope's (``lambda e: e.data["order_id"]``); each group keeps the order of the
    iterable. `dedup_id` gives each envelope's MessageDeduplicationId (required unless the
    queue has ContentBasedDeduplication, see :func:`publish`).
    """
    check_group(queue_url, group, dedup_id)
    envelopes = list(envelopes)
    bodies = [envelope.to_body() for envelope in envelopes]
    groups = None if group is None else [_group_of(group, e) for e in envelopes]
    dedup_ids = None if dedup_id is None else [dedup_id(e) for e in envelopes]
    return send_bodies(sqs, queue_url, bodies, groups=groups, dedup_ids=dedup_ids)


def _group_of(group: Group, envelope: Envelope) -> str:
    return group if isinstance(group, str) else group(envelope)


def send_bodies(
    sqs: SQSClient,
    queue_url: str,
    bodies: Sequence[str],
    *,
    groups: str | Sequence[str] | None = None,
    dedup_ids: Sequence[str] | None = None,
) -> list[str]:
    """Send message bodies as they are, ten per SendMessageBatch call; return their MessageIds.

    For payloads that are not envelopes: the worker emits any other JSON body as the default
    event, and dead-letters what is not JSON. Raises :class:`PublishError` when SQS refused
    some (after trying every batch). `groups` (one for all, or one per body) and `dedup_ids`
    (one per body) are for a FIFO queue, as in :func:`publish_batch`.
    """
    check_group(queue_url, groups, dedup_ids)
    group_of = [groups] * len(bodies) if isinstance(groups, str) else groups
    if group_of is not None and len(group_of) != len(bodies):
        raise ValueError(f"{len(group_of)} groups for {len(bodies)} bodies")
    if dedup_ids is not None and len(dedup_ids) != len(bodies):
        raise ValueError(f"{len(dedup_ids)} de-duplication ids for {len(bodies)} bodies")
    message_ids: list[str | None] = []
    failures: dict[int, str] = {}
    for start in range(0, len(bodies), SQS_BATCH_MAX):
        chunk = bodies[start : start + SQS_BATCH_MAX]
        with publishing(queue_url, len(chunk)):
            attributes = message_attributes()
            entries: list[dict[str, Any]] = []
            for n, body in enumerate(chunk):
                entry: dict[str, Any] = {"Id": str(n), "MessageBody": body}
                if group_of is not None:
                    entry["MessageGroupId"] = group_of[start + n]
                if dedup_ids is not None:
                    entry["MessageDeduplicationId"] = dedup_ids[start + n]
                if attributes:
                    entry["MessageAttributes"] = attributes
                entries.append(entry)
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
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
