"""The worker loop: plain blocking boto3 and pyzmq, no asyncio, no module-level state.

The same `Worker` runs as its own process (`python -m worker`, this design) or as a thread
inside the server process (the in-process mode the benchmark compares against).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared import counters as c
from shared.counters import Counters
from shared.envelope import DecodeError, parse_body, sqs_attributes
from shared.settings import Settings
from shared.wire import Delivery
from worker.deadletter import DeadLetters
from worker.handoff import Handoff

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 10.0


class Worker:
    """Receives from SQS, hands each batch to the server(s), deletes what they confirmed.

    >>> stop = threading.Event()
    >>> worker = Worker(settings=settings, sqs=make_sqs_client(settings),
    ...                 handoff=Handoff(endpoints=settings.worker_endpoints, ack_timeout_s=5),
    ...                 stop=stop)
    >>> threading.Thread(target=worker.run).start()   # ... later: stop.set()

    A message is deleted only after every server confirmed it; what is not confirmed is made
    visible again at once so another receive (here or in another worker) retries it. At most
    `SQS_BATCH_SIZE` messages are in flight per worker: it waits for a batch's confirmation
    before its next receive. A body that can never be delivered goes to the dead-letter queue.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        sqs: SQSClient,
        handoff: Handoff,
        stop: threading.Event,
        counters: Counters | None = None,
        name: str = "worker",
    ) -> None:
        self._settings = settings
        self._sqs = sqs
        self._handoff = handoff
        self._stop = stop
        self._name = name
        self.counters = counters or Counters()
        self.in_flight = 0  # messages handed off and not yet confirmed (the hand-off's depth)
        self._dead = DeadLetters(
            sqs=sqs, queue_url=settings.sqs_queue_url, dlq_url=settings.sqs_dlq_url
        )

    def run(self) -> None:
        """Consume until the stop flag is set. Errors at the SQS or ZeroMQ boundary are logged
        and retried with backoff; they never end the loop."""
        logger.info(
            "Started %s [%d], queue %s", self._name, os.getpid(), self._settings.sqs_queue_url
        )
        backoff = 0.0
        if self._wait_for_queue():
            while not self._stop.is_set():
                try:
                    if not self._handoff.wait_ready(self._stop):
                        break
                    messages = self._receive()
                    if messages:
                        self._handle(messages)
                    backoff = 0.0
                except (BotoCoreError, ClientError) as exc:
                    if self._stop.is_set():
                        logger.info("SQS call ended by shutdown: %s", exc)
                        break
                    backoff = min(_MAX_BACKOFF_S, backoff * 2 or 0.5)
                    logger.warning("SQS call failed (%s); retrying in %.1f s", exc, backoff)
                    self._stop.wait(backoff)
                except Exception:
                    backoff = min(_MAX_BACKOFF_S, backoff * 2 or 0.5)
                    logger.exception("Worker loop error; retrying in %.1f s", backoff)
                    self._stop.wait(backoff)
        logger.info("Stopped %s: %s", self._name, self.counters.summary(_SUMMARY))

    def _wait_for_queue(self) -> bool:
        logged = False
        while not self._stop.is_set():
            try:
                self._dead.resolve()
                if logged:
                    logger.info("SQS queue %s is ready", self._settings.sqs_queue_url)
                return True
            except (BotoCoreError, ClientError) as exc:
                if not logged:
                    logger.info(
                        "Waiting for SQS queue %s (%s); retrying every second",
                        self._settings.sqs_queue_url,
                        exc,
                    )
                    logged = True
                self._stop.wait(1.0)
        return False

    def _receive(self) -> list[dict[str, Any]]:
        s = self._settings
        extra = (
            {}
            if s.sqs_visibility_timeout_s is None
            else {"VisibilityTimeout": s.sqs_visibility_timeout_s}
        )
        response = self._sqs.receive_message(
            QueueUrl=s.sqs_queue_url,
            MaxNumberOfMessages=s.sqs_batch_size,
            WaitTimeSeconds=s.sqs_wait_s,
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
            **extra,  # type: ignore[arg-type]
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])  # type: ignore[assignment]
        self.counters.inc(c.RECEIVED, len(messages))
        if messages and self._stop.is_set():
            # Received while stopping: hand them back instead of starting work on them.
            self._release(messages, c.RETURNED_ON_SHUTDOWN)
            return []
        return messages

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        deliveries: list[Delivery] = []
        by_id: dict[str, dict[str, Any]] = {}
        received_ms = int(time.time() * 1000)
        dead: list[dict[str, Any]] = []
        for message in messages:
            try:
                envelope = parse_body(
                    message["Body"],
                    default_event=self._settings.default_event,
                    max_bytes=self._settings.max_message_bytes,
                    attributes=sqs_attributes(message.get("MessageAttributes")),
                )
            except DecodeError as exc:
                if self._dead.move(message, exc):
                    dead.append(message)
                    self.counters.inc(c.DEAD_LETTERED, reason=exc.code)
                    logger.warning(
                        "Dead-lettered message %s (%s): %s",
                        message["MessageId"],
                        exc.code,
                        exc.reason,
                    )
                else:
                    logger.warning(
                        "Message %s cannot be delivered (%s, receive #%s): %s",
                        message["MessageId"],
                        exc.code,
                        message.get("Attributes", {}).get("ApproximateReceiveCount", "?"),
                        exc.reason,
                    )
                continue
            sent = message.get("Attributes", {}).get("SentTimestamp")
            deliveries.append(
                Delivery(
                    message["MessageId"],
                    envelope,
                    int(sent) if sent and sent.isdigit() else None,
                    received_ms,
                )
            )
            by_id[message["MessageId"]] = message
        self.in_flight = len(deliveries)
        try:
            confirmed = self._handoff.deliver(deliveries, self._stop)
        finally:
            self.in_flight = 0
        done = [m for i, m in by_id.items() if i in confirmed]
        self._delete(done + dead)
        self.counters.inc(c.DELIVERED, len(done))
        unconfirmed = [m for i, m in by_id.items() if i not in confirmed]
        if unconfirmed:
            self._release(
                unconfirmed, c.RETURNED_ON_SHUTDOWN if self._stop.is_set() else c.RETURNED
            )

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        response = self._sqs.delete_message_batch(
            QueueUrl=self._settings.sqs_queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )
        for failure in response.get("Failed", []):
            # It was delivered; a redelivery is dropped by the server's de-duplication.
            message = messages[int(failure["Id"])]
            logger.warning(
                "Delete of handled message %s failed (%s: %s); a redelivery will be dropped "
                "as a duplicate",
                message["MessageId"],
                failure.get("Code"),
                failure.get("Message"),
            )

    def _release(self, messages: list[dict[str, Any]], counter: str) -> None:
        """Make messages visible again now, so they are not stuck until the visibility timeout."""
        try:
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._settings.sqs_queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for n, m in enumerate(messages)
                ],
            )
            self.counters.inc(counter, len(messages))
            logger.info("Returned %d unconfirmed message(s) to the queue", len(messages))
        except (BotoCoreError, ClientError):
            logger.exception(
                "Could not return %d message(s); they reappear after the visibility timeout",
                len(messages),
            )


_SUMMARY = (c.RECEIVED, c.DELIVERED, c.DEAD_LETTERED, c.RETURNED, c.RETURNED_ON_SHUTDOWN)
