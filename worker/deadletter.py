"""Moves undeliverable messages to the dead-letter queue, with the reason attached.

Why not leave them to the queue's redrive policy? Redrive moves a message only after
`maxReceiveCount` receives, each one a visibility timeout apart, so a bad message costs
minutes and is logged once per receive; and redrive cannot say why. Moving it at once, with
the reason in message attributes, is what an operator needs. The redrive policy stays the
backstop for messages the worker never gets to judge (a worker that crashes on one, say).

A FIFO queue's dead-letter queue must be FIFO too: the copy keeps the original's
MessageGroupId and takes its MessageId as MessageDeduplicationId, so that moving the same
message twice (a worker killed between the copy and the delete) leaves one copy.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.envelope import DecodeError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

#: SQS allows 10 message attributes per message.
_MAX_ATTRIBUTES = 10
_MAX_REASON_CHARS = 1000
#: The group of a copy to a FIFO dead-letter queue whose original had none (a standard source
#: queue named in SQS_DLQ_URL beside a FIFO DLQ).
DEFAULT_GROUP = "relay-dead-letters"


class DeadLetters:
    """The dead-letter queue of one source queue.

    Used as::

        dead = DeadLetters(sqs=sqs, queue_url=url, dlq_url=None)
        dead.resolve(attributes.get("RedrivePolicy"))   # finds the DLQ in the redrive policy
        dead.move(message, error)   # True once the copy is in the DLQ: delete the original
    """

    def __init__(self, *, sqs: SQSClient, queue_url: str, dlq_url: str | None) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self.url = dlq_url

    def resolve(self, redrive_policy: str | None) -> None:
        """Find the DLQ from the queue's `RedrivePolicy` attribute (which the worker reads with
        the other queue attributes it needs) unless `SQS_DLQ_URL` named one."""
        if self.url:
            logger.info("Dead-letter queue: %s (SQS_DLQ_URL)", self.url)
            return
        if not redrive_policy:
            logger.warning(
                "Queue %s has no redrive policy and SQS_DLQ_URL is unset: undeliverable messages "
                "stay on the queue and are retried until its retention period ends",
                self._queue_url,
            )
            return
        arn = json.loads(redrive_policy)["deadLetterTargetArn"]
        _arn, _aws, _sqs, _region, account, name = arn.split(":", 5)
        self.url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        logger.info("Dead-letter queue: %s (from the redrive policy)", self.url)

    def move(self, message: dict[str, Any], error: DecodeError) -> bool:
        """Copy `message` to the DLQ with the reason; False if there is none or the copy failed
        (then the message stays where it is, and the redrive policy is the backstop)."""
        if not self.url:
            return False
        reason = {
            "relay_error_code": error.code,
            "relay_error_reason": error.reason[:_MAX_REASON_CHARS],
            "relay_source_message_id": message["MessageId"],
        }
        # The original's own attributes too, as many as fit beside the reason.
        kept = list(message.get("MessageAttributes", {}).items())[: _MAX_ATTRIBUTES - len(reason)]
        attributes = dict(kept) | {
            name: {"DataType": "String", "StringValue": value} for name, value in reason.items()
        }
        fifo: dict[str, str] = {}
        if self.url.rstrip("/").endswith(".fifo"):
            fifo = {
                "MessageGroupId": message.get("Attributes", {}).get("MessageGroupId")
                or DEFAULT_GROUP,
                "MessageDeduplicationId": message["MessageId"],
            }
        try:
            self._sqs.send_message(
                QueueUrl=self.url,
                MessageBody=message["Body"],
                MessageAttributes=attributes,
                **fifo,  # type: ignore[arg-type]
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning(
                "Could not move message %s to the dead-letter queue (%s); it stays on the queue",
                message["MessageId"],
                exc,
            )
            return False
        return True
