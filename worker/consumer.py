"""The worker loop: plain blocking boto3 and pyzmq, no asyncio, no module-level state.

The same `Worker` runs as its own process (`python -m worker`, this design) or as a thread
inside the server process (the in-process mode the benchmark compares against).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared import counters as c
from shared.counters import WORKER_NAMES, Counters
from shared.deadline import StopDeadline
from shared.envelope import DecodeError, Envelope, parse_body, sqs_attributes
from shared.settings import Settings
from shared.tracing import Tracing
from shared.wire import Delivery
from worker.deadletter import DeadLetters
from worker.handoff import DealerHandoff
from worker.longpoll import LongPoll
from worker.sqshealth import SqsHealth
from worker.tracing import BatchTrace

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import (
        MessageSystemAttributeNameType,
        QueueAttributeFilterType,
        QueueAttributeNameType,
    )

logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 10.0
#: How long the loop may wait for a server before /readyz says so (a ping's round trip).
_HANDOFF_GRACE_S = 1.0

#: Exit status of a worker that refuses to run with these settings against this queue.
EXIT_REFUSED = 2


def parse_message(message: dict[str, Any], settings: Settings) -> Envelope:
    """The envelope of one SQS message (its body and routing attributes), or `DecodeError`."""
    return parse_body(
        message["Body"],
        default_event=settings.default_event,
        max_bytes=settings.max_message_bytes,
        max_rooms=settings.max_message_rooms,
        attributes=sqs_attributes(message.get("MessageAttributes")),
    )


class Worker:
    """Receives from SQS, hands each batch to the server(s), deletes what they confirmed.

    Run it in a thread and stop it with the flag::

        stop = threading.Event()
        worker = Worker(settings=settings, sqs=make_sqs_client(settings),
                        handoff=DealerHandoff(endpoints=settings.worker_endpoints, ack_timeout_s=5),
                        stop=stop)
        threading.Thread(target=worker.run).start()   # ... later: stop.set()

    A message is deleted only after every server in the hand-off's delivery set confirmed it;
    what is not confirmed is made visible again at once so another receive (here or in another
    worker) retries it. At most `SQS_BATCH_SIZE` messages are in flight per worker: it waits
    for a batch's confirmation before its next receive. A message that can never be delivered
    goes to the dead-letter queue on its own; the rest of its batch goes on. Setting the stop
    flag ends an open long poll at once (on a busy queue, after up to
    `StopDeadline.POLL_GRACE_S` for it to answer by itself).

    On a FIFO queue (a URL ending ``.fifo``) each message group keeps its order: once a message
    of a group stays on the queue (not confirmed, or undeliverable with no dead-letter queue to
    take it), the group's later messages in the batch go back with it, confirmed or not, so
    that none is deleted before an earlier one of its group; SQS then holds the group until
    the earlier one is received again. A dead-lettered message is deleted and its group goes on.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        sqs: SQSClient,
        handoff: DealerHandoff,
        stop: threading.Event,
        counters: Counters,
        name: str = "worker",
        parse: Callable[[dict[str, Any], Settings], Envelope] = parse_message,
        tracing: Tracing | None = None,
    ) -> None:
        self._settings = settings
        self._sqs = sqs
        self._handoff = handoff
        self._stop = stop
        self._name = name
        self._parse = parse
        self.counters = counters
        self.in_flight = 0  # messages handed off and not yet confirmed (the hand-off's depth)
        self.stop_deadline = StopDeadline(settings.shutdown_timeout_s, stop=stop)
        #: The visibility timeout receives get (the queue's unless SQS_VISIBILITY_TIMEOUT_S).
        self.visibility_timeout_s: int | None = settings.sqs_visibility_timeout_s
        self._dead = DeadLetters(
            sqs=sqs, queue_url=settings.sqs_queue_url, dlq_url=settings.sqs_dlq_url
        )
        #: What the SQS calls go through (counted, logged once per outage, /readyz).
        self.sqs_health = SqsHealth(counters)
        self._tracked = self.sqs_health.install(sqs)
        self._waiting_since: float | None = None  # waiting for a server in the delivery set
        self._poll = LongPoll.install(sqs)
        self._busy = False  # the last receive brought messages
        self._tracing = tracing  # None: traces off (shared/tracing.py)
        self._polled_ns = 0  # traces on: when the last long poll returned
        self.fifo = settings.sqs_queue_url.rstrip("/").endswith(".fifo")

    def run(self) -> int:
        """Consume until the stop flag is set, then return 0; return `EXIT_REFUSED` (2) at once
        if ACK_TIMEOUT_S is not below the visibility timeout. Errors at the SQS or ZeroMQ
        boundary are logged and retried with backoff; they never end the loop."""
        logger.info(
            "Started %s [%d], queue %s", self._name, os.getpid(), self._settings.sqs_queue_url
        )
        threading.Thread(
            target=self._end_poll_on_stop, name=f"{self._name}-stop", daemon=True
        ).start()
        if not self._read_queue_attributes():
            return self._stopped(0)
        if not self._ack_timeout_fits():
            return self._stopped(EXIT_REFUSED)
        self._handoff.set_visibility_timeout(self.visibility_timeout_s)
        backoff = 0.0
        while not self._stop.is_set():
            try:
                self._waiting_since = time.monotonic()
                ready = self._handoff.wait_ready(self._stop)
                self._waiting_since = None
                if not ready:
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
                # SqsHealth logged the outage's first failed attempt and logs its end.
                logger.log(
                    logging.DEBUG if self._tracked else logging.WARNING,
                    "SQS call failed (%s); retrying in %.1f s",
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
            except Exception:
                backoff = min(_MAX_BACKOFF_S, backoff * 2 or 0.5)
                logger.exception("Worker loop error; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
        return self._stopped(0)

    def problems(self) -> list[str]:
        """What keeps this worker from relaying now, for /readyz; empty when nothing does.
        Any thread may ask."""
        problems = []
        sqs = self.sqs_health.problem()
        if sqs is not None:
            problems.append(sqs)
        since = self._waiting_since
        if since is not None and time.monotonic() - since >= _HANDOFF_GRACE_S:
            problems.append(
                f"hand-off: no server in the delivery set for {time.monotonic() - since:.0f} s"
            )
        return problems

    def _stopped(self, code: int) -> int:
        logger.info("Stopped %s: %s", self._name, self.counters.summary(WORKER_NAMES))
        return code

    def _end_poll_on_stop(self) -> None:
        # A thread of its own, so that it works the same whoever sets the flag (a signal
        # handler in process mode, the server's lifespan in thread mode).
        self._stop.wait()
        self.stop_deadline.start()
        if self._poll is None:
            return
        if self._busy:
            remaining = self.stop_deadline.remaining() or 0.0
            grace = min(StopDeadline.POLL_GRACE_S, remaining - StopDeadline.AFTER_ACK_S)
            if grace > 0 and self._poll.wait_closed(grace):
                self._poll.end_now()  # refuse later polls; none is open to cut
                return
        if self._poll.end_now():
            logger.info("Stopping: ending the open long poll")

    def _read_queue_attributes(self) -> bool:
        """Find the DLQ (the queue's RedrivePolicy, unless SQS_DLQ_URL) and the visibility
        timeout (the queue's VisibilityTimeout, unless SQS_VISIBILITY_TIMEOUT_S) in one
        GetQueueAttributes call, retrying every second while the queue cannot be reached.
        False if stopped first."""
        s = self._settings
        names: list[QueueAttributeFilterType] = []
        if not s.sqs_dlq_url:
            names.append("RedrivePolicy")
        if s.sqs_visibility_timeout_s is None:
            names.append("VisibilityTimeout")
        logged = False
        while not self._stop.is_set():
            try:
                attributes: dict[QueueAttributeNameType, str] = {}
                if names:
                    attributes = self._sqs.get_queue_attributes(
                        QueueUrl=s.sqs_queue_url, AttributeNames=names
                    ).get("Attributes", {})
                self._dead.resolve(attributes.get("RedrivePolicy"))
                if "VisibilityTimeout" in attributes:
                    self.visibility_timeout_s = int(attributes["VisibilityTimeout"])
                if logged:
                    logger.info("SQS queue %s is ready", s.sqs_queue_url)
                return True
            except (BotoCoreError, ClientError) as exc:
                if not logged:
                    logger.info(
                        "Waiting for SQS queue %s (%s); retrying every second",
                        s.sqs_queue_url,
                        exc,
                    )
                    logged = True
                self._stop.wait(1.0)
        return False

    def _ack_timeout_fits(self) -> bool:
        # A batch may wait ACK_TIMEOUT_S for its confirmation; past the visibility timeout SQS
        # hands the same messages to another receive while this one still has them in flight.
        s = self._settings
        vt = self.visibility_timeout_s
        if vt is None or s.ack_timeout_s < vt:
            return True
        source = (
            f"SQS_VISIBILITY_TIMEOUT_S ({vt} s)"
            if s.sqs_visibility_timeout_s is not None
            else f"the queue's VisibilityTimeout ({vt} s)"
        )
        logger.error(
            "ACK_TIMEOUT_S=%.1f is not below %s: a batch waiting that long for its confirmation "
            "would reappear on the queue while still in flight. Lower ACK_TIMEOUT_S or raise "
            "the queue's visibility timeout; not starting",
            s.ack_timeout_s,
            source,
        )
        return False

    def _receive(self) -> list[dict[str, Any]]:
        s = self._settings
        extra = (
            {}
            if s.sqs_visibility_timeout_s is None
            else {"VisibilityTimeout": s.sqs_visibility_timeout_s}
        )
        if self._poll is not None and not self._poll.begin():
            return []  # stopping
        logger.debug("Long poll open (up to %d s, %d messages)", s.sqs_wait_s, s.sqs_batch_size)
        try:
            response = self._sqs.receive_message(
                QueueUrl=s.sqs_queue_url,
                MaxNumberOfMessages=s.sqs_batch_size,
                WaitTimeSeconds=s.sqs_wait_s,
                MessageSystemAttributeNames=self._system_attributes(),
                MessageAttributeNames=["All"],
                **extra,  # type: ignore[arg-type]
            )
        except Exception:
            if self._poll is not None and self._poll.end():
                self._abandoned()
                return []
            raise
        if self._poll is not None:
            self._poll.end()
        messages: list[dict[str, Any]] = response.get("Messages", [])  # type: ignore[assignment]
        if self._tracing is not None:
            self._polled_ns = time.time_ns()
        self._busy = bool(messages)
        self.counters.inc(c.RECEIVED, len(messages))
        if messages and self._stop.is_set():
            # Received while stopping: hand them back instead of starting work on them.
            self._release(messages, c.RETURNED_ON_SHUTDOWN)
            return []
        return messages

    def _system_attributes(self) -> list[MessageSystemAttributeNameType]:
        names: list[MessageSystemAttributeNameType] = ["SentTimestamp", "ApproximateReceiveCount"]
        if self._tracing is not None:
            names.append("AWSTraceHeader")  # X-Ray's context, when the sender had one
        return [*names, "MessageGroupId"] if self.fifo else names

    def _group(self, message: dict[str, Any]) -> str | None:
        """The message's group on a FIFO queue; None on a standard one."""
        if not self.fifo:
            return None
        group: str | None = message.get("Attributes", {}).get("MessageGroupId")
        return group

    def _abandoned(self) -> None:
        self.counters.inc(c.ABANDONED_POLLS)
        vt = self.visibility_timeout_s
        logger.warning(
            "Ended the open long poll to stop: up to %d message(s) SQS may have handed to it "
            "reappear after the visibility timeout (%s)",
            self._settings.sqs_batch_size,
            "unknown" if vt is None else f"{vt} s",
        )

    def _decode(self, message: dict[str, Any]) -> Envelope:
        """The message's envelope; any failure to decode it becomes a `DecodeError`, so that
        it is dead-lettered alone and never takes its batch down with it."""
        try:
            return self._parse(message, self._settings)
        except DecodeError:
            raise
        except Exception as exc:  # ValueError, RecursionError, a bug: this message only
            logger.debug("Decoding message %s failed", message.get("MessageId"), exc_info=True)
            raise DecodeError("decode_failed", f"{type(exc).__name__}: {exc}") from exc

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        if self._tracing is None:
            self._handle_batch(messages, None)
            return
        trace = BatchTrace(self._tracing, self._settings.sqs_queue_url, messages, self._polled_ns)
        try:
            self._handle_batch(messages, trace)
        finally:
            trace.end()

    def _handle_batch(self, messages: list[dict[str, Any]], trace: BatchTrace | None) -> None:
        deliveries: list[Delivery] = []
        by_id: dict[str, dict[str, Any]] = {}
        received_ms = int(time.time() * 1000)
        dead: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []  # FIFO: behind a message of their group that stays
        stays: set[str] = set()  # FIFO: groups with a message that stays on the queue
        for message in messages:
            group = self._group(message)
            if group is not None and group in stays:
                held.append(message)
                if trace is not None:
                    trace.held(message)
                continue
            try:
                envelope = self._decode(message)
            except DecodeError as exc:
                if self._dead.move(message, exc):
                    dead.append(message)
                    if trace is not None:
                        trace.dead_lettered(message, exc.code, exc.reason)
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
                    if trace is not None:
                        trace.kept(message, exc.code, exc.reason)
                    if group is not None:
                        stays.add(group)  # it reappears after the visibility timeout
                continue
            if trace is not None:
                trace.decoded(message, envelope)
            sent = message.get("Attributes", {}).get("SentTimestamp")
            deliveries.append(
                Delivery(
                    message["MessageId"],
                    envelope,
                    int(sent) if sent and sent.isdigit() else None,
                    received_ms,
                    self._group(message),
                )
            )
            by_id[message["MessageId"]] = message
        self.in_flight = len(deliveries)
        if trace is not None:
            deliveries = trace.hand_off(deliveries)
        confirmed: set[str] = set()
        try:
            confirmed = self._handoff.deliver(deliveries, self._stop, deadline=self._ack_deadline)
        finally:
            if trace is not None:
                trace.handed(confirmed)
            # Whatever happened to the hand-off, the dead-lettered copies are in the DLQ and
            # the rest goes back to the queue now rather than after the visibility timeout.
            self.in_flight = 0
            done, unconfirmed = self._split(list(by_id.values()), confirmed)
            self._delete(done + dead)
            if trace is not None:
                trace.deleted(done + dead)
            self.counters.inc(c.DELIVERED, len(done))
            unconfirmed += held
            if unconfirmed:
                stopping = self._stop.is_set()
                self._release(unconfirmed, c.RETURNED_ON_SHUTDOWN if stopping else c.RETURNED)
                if trace is not None:
                    trace.returned(unconfirmed, stopping=stopping)

    def _split(
        self, handed: list[dict[str, Any]], confirmed: set[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The handed-off messages to delete, and those to return to the queue: the
        unconfirmed ones and, on a FIFO queue, every later one of a group after its first
        unconfirmed one (in the batch's order, which is the group's)."""
        done: list[dict[str, Any]] = []
        back: list[dict[str, Any]] = []
        stopped: set[str] = set()
        behind = 0
        for message in handed:
            group = self._group(message)
            if group is not None and group in stopped:
                back.append(message)
                behind += message["MessageId"] in confirmed
            elif message["MessageId"] in confirmed:
                done.append(message)
            else:
                back.append(message)
                if group is not None:
                    stopped.add(group)
        if behind:
            logger.info(
                "Returning %d confirmed message(s) with an unconfirmed earlier one of their "
                "group (FIFO); their redelivery is dropped as a duplicate",
                behind,
            )
        return done, back

    def _ack_deadline(self) -> float | None:
        """While stopping: when waiting for a confirmation must end, so that deleting and
        returning still fit in the stop's one deadline."""
        at = self.stop_deadline.at()
        return None if at is None else at - StopDeadline.AFTER_ACK_S

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
        except (BotoCoreError, ClientError) as exc:
            logger.warning(
                "Could not return %d message(s) (%s); they reappear after the visibility timeout",
                len(messages),
                exc,
            )
