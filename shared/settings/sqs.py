"""SQS: the queue a worker consumes, how it receives, and what a message may be."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from shared.envelope import RESERVED_EVENTS, RESERVED_PREFIX, SQS_MAX_BYTES
from shared.settings.fields import EmptyIsUnset, comment, is_loopback

#: The queue the embedded emulator (`python -m sqs_emulator`) creates and serves. Port 9324 is
#: the usual local-SQS port; 123456789012 is the account ID moto puts in every queue URL.
EMBEDDED_QUEUE_URL = "http://127.0.0.1:9324/123456789012/push-relay"

_AWS_HOST = re.compile(
    r"^(?:sqs\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com"
)


class SqsSettings(BaseModel):
    """The queue and its messages (boto3's own variables where boto3 has one)."""

    SECTION: ClassVar[str] = "SQS"
    SECTION_NOTE: ClassVar[str] = (
        "Credentials: boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
        "instance roles...). Against a loopback emulator with none configured, dummy ones are "
        "used."
    )

    sqs_queue_url: str = Field(
        EMBEDDED_QUEUE_URL,
        description="URL of the queue to consume (the embedded emulator's by default).",
        json_schema_extra=comment(
            "The queue to consume. The default is the one the embedded emulator (`sqs` in the "
            "Procfile) creates. For real AWS set your queue's URL and run `honcho start server "
            "worker`."
        ),
    )
    aws_endpoint_url_sqs: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="boto3's own variable: the SQS endpoint. Unset for real AWS.",
        json_schema_extra=comment(
            "boto3's own variable: the SQS endpoint. Unset for real AWS. A loopback SQS_QUEUE_URL "
            "implies it (only an emulator listens there), so the default needs nothing here."
        ),
    )
    aws_default_region: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="boto3's own variable. Unset: the region in an AWS queue URL, else us-east-1.",
    )
    sqs_wait_s: int = Field(
        20, ge=0, le=20, description="ReceiveMessage long-poll wait, 0-20 seconds."
    )
    sqs_batch_size: int = Field(10, ge=1, le=10, description="Messages per ReceiveMessage, 1-10.")
    sqs_visibility_timeout_s: int | None = Field(
        None,
        ge=0,
        le=43200,
        description="Visibility timeout asked for on each receive, seconds; unset: the queue's "
        "own.",
    )
    sqs_dlq_url: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="The dead-letter queue undeliverable messages are moved to, with the reason "
        "attached.",
        json_schema_extra=comment(
            "The dead-letter queue undeliverable messages are moved to, with the reason attached."
            "\nUnset: the one named by the queue's redrive policy (the emulator's queue has one)."
        ),
    )
    max_message_bytes: int = Field(
        262_144,
        ge=1,
        le=SQS_MAX_BYTES,
        description="Bodies larger than this many bytes are dead-lettered (SQS's own ceiling is "
        f"{SQS_MAX_BYTES}).",
    )
    sqs_max_receive_count: int = Field(
        5,
        ge=1,
        le=1000,
        description="Emulator only: receives before a message is moved to the dead-letter queue.",
    )
    sqs_emulator_listen: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="Emulator only: the address it listens on, e.g. 0.0.0.0 in a container whose "
        "SQS_QUEUE_URL names it by a host name (http://sqs:9324/...) for other containers; "
        "unset: the loopback host of SQS_QUEUE_URL, and a queue URL that is not on loopback is "
        "refused. moto checks no credentials: never let it face anything but your own "
        "containers.",
    )
    default_event: str = Field(
        "message",
        min_length=1,
        description='Event name for bodies that are not an envelope {"event", "data", "room", '
        '"namespace"}.',
    )
    max_message_rooms: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Rooms one message may name; more: dead-lettered as too_many_rooms.",
        json_schema_extra=comment(
            "Rooms one message may name (a list of rooms is one emit per room); more: "
            "dead-lettered as too_many_rooms."
        ),
    )

    @field_validator("sqs_queue_url", "aws_endpoint_url_sqs", "sqs_dlq_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("sqs_queue_url")
    @classmethod
    def _queue_path(cls, value: str) -> str:
        if not urlsplit(value).path.strip("/"):
            raise ValueError(f"must name a queue (…/ACCOUNT_ID/QUEUE_NAME), got {value!r}")
        return value

    @field_validator("sqs_emulator_listen")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                "must be an IP address (0.0.0.0, 127.0.0.1, ::), not a host name"
            ) from None

    @field_validator("sqs_visibility_timeout_s")
    @classmethod
    def _visibility(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError(
                "0 would make every received message visible again at once, so other "
                "receives get it while it is in flight; unset it to use the queue's own"
            )
        return value

    @field_validator("default_event")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_EVENTS or value.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"is a reserved event name (Socket.IO's own, or the relay's {RESERVED_PREFIX}*);"
                " clients would take every such message for a Socket.IO or relay event"
            )
        return value

    @property
    def queue_name(self) -> str:
        return urlsplit(self.sqs_queue_url).path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def queue_is_local(self) -> bool:
        return is_loopback(urlsplit(self.sqs_queue_url).hostname or "")

    @property
    def sqs_endpoint_url(self) -> str | None:
        """The endpoint boto3 should use; None lets boto3 resolve the AWS one.

        A queue URL on a loopback address can only be served by an emulator, so it names the
        endpoint too; that is what makes a bare `honcho start` work with no settings at all.
        """
        if self.aws_endpoint_url_sqs:
            return self.aws_endpoint_url_sqs
        if self.queue_is_local:
            parts = urlsplit(self.sqs_queue_url)
            return f"{parts.scheme}://{parts.netloc}"
        return None

    @property
    def region(self) -> str:
        if self.aws_default_region:
            return self.aws_default_region
        match = _AWS_HOST.match(urlsplit(self.sqs_queue_url).hostname or "")
        return match.group("region") if match else "us-east-1"
