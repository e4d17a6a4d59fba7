"""The backend's presence events (user_online, user_offline, room_join, room_leave) from the
store's outbox to SQS (PRESENCE_EVENTS_QUEUE_URL), in order, through SQS's outages.

One server at a time sends (the store's sender lease), oldest first, up to ten per
SendMessageBatch, and takes an event out of the outbox only once SQS has it: a server killed
mid-send leaves it for the next sender, so each event is sent at least once (a FIFO queue
drops the repeat by its deduplication ID; a standard queue's consumer can by ``user`` and
``seq``). While SQS refuses or is unreachable, events wait in the outbox (bounded by
PRESENCE_OUTBOX_MAX: past it, each is counted and logged by the sending server, and missing
from its user's sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import TYPE_CHECKING

from server.presence.model import Outgoing
from server.presence.store import PresenceStore
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

logger = logging.getLogger(__name__)

#: SendMessageBatch's most entries.
BATCH = 10
#: Seconds between looks at an empty outbox, and the longest wait after a failure (at most a
#: third of PRESENCE_LEASE_S).
IDLE_S = 0.1
BACKOFF_MAX_S = 5.0


class SendFailed(Exception):
    """SQS refused some events of a batch (they stay in the outbox)."""


class OutboxSender:
    """Sends the outbox while this server holds the sender's lease.

    Usage::

        sender = OutboxSender(settings, store=store, counters=counters)
        sender.start()          # in the running loop; nothing without PRESENCE_EVENTS_QUEUE_URL
        await sender.close()
    """

    def __init__(self, settings: Settings, *, store: PresenceStore, counters: Counters) -> None:
        self._settings = settings
        self._store = store
        self._counters = counters
        self._queue_url = settings.presence_events_queue_url
        self._fifo = bool(self._queue_url and self._queue_url.endswith(".fifo"))
        self._sqs: SQSClient | None = None
        self._errors: tuple[type[Exception], ...] = ()  # what a send may raise; at start()
        self._task: asyncio.Task[None] | None = None
        # The store's count of dropped events when this server last looked as the sender
        # (None: not the sender then); a server that becomes the sender starts from the count
        # it finds, so that each drop is counted by one server, not by every one.
        self._dropped_seen: int | None = None
        # Shorter than the sender's lease, which only the loop renews: the sender keeps it
        # through an outage, so that the lease does not pass from server to server.
        self._backoff_max_s = min(BACKOFF_MAX_S, settings.presence_lease_s / 3)

    def start(self) -> None:
        if self._queue_url is None:
            return
        # Imported here: boto3 only in a server that sends presence events.
        from botocore.exceptions import BotoCoreError, ClientError

        from shared.sqs import PRESENCE_APP, make_sqs_client

        self._sqs = make_sqs_client(self._settings, app=PRESENCE_APP)
        self._errors = (BotoCoreError, ClientError, SendFailed, *self._store.errors)
        self._task = asyncio.create_task(self._run(), name="presence-outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = IDLE_S
        failing = False
        lease_s = self._settings.presence_lease_s
        while True:
            try:
                leading = await self._store.lead()
                await self._count_dropped(leading)
                if not leading:
                    await asyncio.sleep(lease_s / 3)
                    continue
                batch = await self._store.outbox(BATCH)
                if not batch:
                    await asyncio.sleep(IDLE_S)
                    continue
                await self._send(batch)
                if failing:
                    logger.info("Presence events: SQS takes them again")
                    failing = False
                backoff = IDLE_S
            except self._errors as exc:
                if not failing:
                    logger.warning(
                        "Presence events wait: could not send to %s (%s); retrying, at most "
                        "PRESENCE_OUTBOX_MAX=%d wait",
                        self._queue_url,
                        exc,
                        self._settings.presence_outbox_max,
                    )
                    failing = True
                await asyncio.sleep(backoff)
                backoff = min(self._backoff_max_s, backoff * 2)

    async def _send(self, batch: list[Outgoing]) -> None:
        """One SendMessageBatch, off the event loop (boto3 blocks); what SQS took leaves the
        outbox, and SendFailed if it refused some."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for n, event in enumerate(batch):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(n), "MessageBody": event.body}
            if self._fifo:
                entry["MessageGroupId"] = event.user
                entry["MessageDeduplicationId"] = hashlib.sha256(event.body.encode()).hexdigest()
            entries.append(entry)
        assert self._sqs is not None and self._queue_url is not None
        reply = await asyncio.to_thread(
            self._sqs.send_message_batch, QueueUrl=self._queue_url, Entries=entries
        )
        sent = [batch[int(ok["Id"])].id for ok in reply.get("Successful", [])]
        await self._store.sent(sent)
        self._counters.inc(c.PRESENCE_EVENTS_SENT, len(sent))
        if failed := reply.get("Failed"):
            raise SendFailed(f"SQS refused {len(failed)} event(s): {failed[0].get('Message')}")

    async def _count_dropped(self, leading: bool) -> None:
        """Count and log the events the full outbox could not keep since the last look, while
        this server is the sender (in cluster mode the store's count is every server's)."""
        if not leading:
            self._dropped_seen = None
            return
        dropped = await self._store.dropped()
        if self._dropped_seen is not None and dropped > self._dropped_seen:
            lost = dropped - self._dropped_seen
            self._counters.inc(c.PRESENCE_EVENTS_DROPPED, lost)
            logger.warning(
                "Presence events: %d event(s) dropped, the outbox being full "
                "(PRESENCE_OUTBOX_MAX=%d): their users' sequences have a gap",
                lost,
                self._settings.presence_outbox_max,
            )
        self._dropped_seen = dropped
