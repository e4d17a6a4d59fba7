"""`python -m sqs_emulator` (the command `sqs-relay-emulator`): moto's SQS server on the
loopback address of `SQS_QUEUE_URL`, for trying the relay and for tests.

It creates the queue named by `SQS_QUEUE_URL` and its dead-letter queue (`<name>-dlq`, redrive
after `SQS_MAX_RECEIVE_COUNT` receives) before it says it is ready, so workers never need a
manual step. State lives in memory and is gone when the process stops.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

from shared.sqs import EMULATOR_APP, make_sqs_client
from shared.startup import start

logger = logging.getLogger("sqs_emulator")

DESCRIPTION = """\
Run moto's SQS server on the loopback address and port of SQS_QUEUE_URL, with that queue and
its dead-letter queue (<name>-dlq, after SQS_MAX_RECEIVE_COUNT receives) created before it
logs that it is ready. For trying the relay and for tests; its queues live in memory. Installed
as the command sqs-relay-emulator; it needs moto: pip install 'sqs-push-relay[local]'.
Settings come from the environment and a .env file in the current folder, none on the command
line (the repository's .env.example and docs/settings.md list them). SIGTERM/SIGINT stop it.
"""


def main(argv: list[str] | None = None) -> int:
    settings = start("sqs_emulator", DESCRIPTION, argv)
    if settings is None:
        return 2

    url = urlsplit(settings.sqs_queue_url)
    if not settings.queue_is_local or settings.aws_endpoint_url_sqs:
        logger.error(
            "SQS_QUEUE_URL=%s is not on loopback (or AWS_ENDPOINT_URL_SQS is set): the emulator "
            "serves only a loopback queue URL; leave it out when using real AWS "
            "(`honcho start server worker`)",
            settings.sqs_queue_url,
        )
        return 2
    host, port = url.hostname or "127.0.0.1", url.port or 80
    if not _port_free(host, port):
        logger.error("Cannot listen on %s:%d (from SQS_QUEUE_URL): address in use", host, port)
        return 1

    try:
        from moto.server import ThreadedMotoServer  # slow import; only after the checks
    except ImportError as exc:
        # The wheel's `local` extra; the clone's `local` dependency group has it.
        logger.error("moto is not installed (%s): pip install 'sqs-push-relay[local]'", exc)
        return 2

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    sqs = make_sqs_client(settings, app=EMULATOR_APP)
    dlq_url = sqs.create_queue(QueueName=f"{settings.queue_name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.sqs_max_receive_count)}
    )
    queue_url = sqs.create_queue(
        QueueName=settings.queue_name, Attributes={"RedrivePolicy": redrive}
    )["QueueUrl"]
    logger.info(
        "SQS emulator (moto) listening on http://%s:%d; queue %s ready (dead-letter queue %s, "
        "after %d receives)",
        host,
        port,
        queue_url,
        dlq_url,
        settings.sqs_max_receive_count,
    )

    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    while not stopping:  # the handler only records the signal (no locks in a handler)
        time.sleep(0.2)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # exiting already; a second signal changes nothing
    logger.info("Stopping SQS emulator; queued messages are discarded")
    server.stop()
    logger.info("Stopped")
    return 0


def _port_free(host: str, port: int) -> bool:
    # ThreadedMotoServer waits forever if its thread cannot bind, so find out first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
