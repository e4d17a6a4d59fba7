"""The boto3 SQS client every process builds the same way from :class:`Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from shared.settings import Settings


def make_sqs_client(settings: Settings) -> SQSClient:
    """A boto3 SQS client for the configured queue.

    botocore's "standard" retry mode handles throttling and transient errors. The read timeout
    exceeds the long-poll wait so that a 20-second ReceiveMessage is not cut off. Against a
    loopback emulator with no AWS credentials configured, dummy ones are used (moto accepts any).
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=settings.sqs_wait_s + 10,
        max_pool_connections=20,
    )
    session = boto3.session.Session(region_name=settings.region)
    dummy = "testing" if settings.queue_is_local and session.get_credentials() is None else None
    return session.client(
        "sqs",
        endpoint_url=settings.sqs_endpoint_url,
        config=config,
        aws_access_key_id=dummy,
        aws_secret_access_key=dummy,
    )
