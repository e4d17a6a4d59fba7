"""The boto3 SQS client every process builds the same way from :class:`Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from shared.settings import Settings

#: The part of the relay that makes a client's calls, sent as the `app/<id>` part of every
#: request's User-Agent (botocore's `user_agent_appid`), so that AWS CloudTrail's `userAgent`
#: and the emulator's recorder (sqs_emulator/recorder.py) say who called. Each one's calls are
#: what its policy in deploy/iam/ allows.
WORKER_APP = "sqs-relay-worker"  # the worker loop: `python -m worker`, or CONSUMER=thread
PRODUCER_APP = "sqs-relay-producer"  # `python -m producer` (sqs-relay-publish)
SERVER_APP = "sqs-relay-server"  # the server's own calls: the demo page's /demo/send
PRESENCE_APP = "sqs-relay-presence"  # the server's online/offline events (server/presence/)
EMULATOR_APP = "sqs-relay-emulator"  # the emulator creating its queues (never real AWS)

#: The callers whose every request is made by the relay's own code from settings checked at
#: start, on the hot path: their clients skip botocore's client-side check of each request's
#: parameters (`parameter_validation`), about 7 us a receive and 32 us a delete of ten, a few
#: percent of a worker's CPU per message. SQS itself still refuses a bad request, with its error.
UNCHECKED_APPS = frozenset({WORKER_APP})


def make_sqs_client(
    settings: Settings, *, app: str | None = None, emulator_url: str | None = None
) -> SQSClient:
    """A boto3 SQS client for the configured queue, its requests marked as made by `app`
    (one of the ``*_APP`` names above; None: unmarked, as tests' and benchmarks' own clients).

    botocore's "standard" retry mode handles throttling and transient errors (3 attempts, with
    its exponential backoff and jitter; the worker backs off between calls that still fail,
    worker/sqshealth.py counts and logs them). The read timeout
    exceeds the long-poll wait so that a 20-second ReceiveMessage is not cut off. Against a
    loopback emulator with no AWS credentials configured, dummy ones are used (moto accepts any).

    `emulator_url` (the emulator's own client, http://127.0.0.1:9324): call this address instead
    of the settings' endpoint, with dummy credentials whatever boto3's chain holds, so that the
    emulator never calls AWS, nor signs a request with a real key, whatever SQS_QUEUE_URL names.
    """
    config = Config(  # type: ignore[call-arg]  # botocore-stubs lack user_agent_appid (1.31+)
        # 3 attempts in all: botocore's `max_attempts` would count retries (3 meant 4 calls).
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=5,
        read_timeout=settings.sqs_wait_s + 10,
        max_pool_connections=20,
        user_agent_appid=app,
        parameter_validation=app not in UNCHECKED_APPS,
    )
    session = boto3.session.Session(region_name=settings.region)
    if emulator_url is not None:
        endpoint: str | None = emulator_url
        dummy: str | None = "testing"
    else:
        endpoint = settings.sqs_endpoint_url
        local = settings.queue_is_local
        dummy = "testing" if local and session.get_credentials() is None else None
    return session.client(
        "sqs",
        endpoint_url=endpoint,
        config=config,
        aws_access_key_id=dummy,
        aws_secret_access_key=dummy,
    )
