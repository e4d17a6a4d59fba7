"""`python -m sqs_emulator` (the command `sqs-relay-emulator`): moto's SQS server on the
loopback address of `SQS_QUEUE_URL`, or on `SQS_EMULATOR_LISTEN`, for trying the relay and for
tests.

It creates the queue named by `SQS_QUEUE_URL` and its dead-letter queue (`<name>-dlq`, redrive
after `SQS_MAX_RECEIVE_COUNT` receives) before it says it is ready, so workers never need a
manual step. A name ending `.fifo` makes both FIFO queues (the dead-letter one
`<stem>-dlq.fifo`); moto's FIFO queues keep a group's order within one receive but may hand
one group to two receivers at once (docs/producing.md, "FIFO queues"). State lives in memory
and is gone when the process stops.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.settings import Settings
from shared.sqs import EMULATOR_APP, make_sqs_client
from shared.startup import start

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

logger = logging.getLogger("sqs_emulator")

DESCRIPTION = """\
Run moto's SQS server at the port of SQS_QUEUE_URL, with that queue and its dead-letter queue
(<name>-dlq, after SQS_MAX_RECEIVE_COUNT receives; both FIFO for a name ending .fifo, the
dead-letter one <stem>-dlq.fifo) created before it logs that it is ready. For
trying the relay and for tests; its queues live in memory. Installed as the command
sqs-relay-emulator; it needs moto: pip install 'sqs-push-relay[local]'.
It listens on the loopback host of SQS_QUEUE_URL and refuses a queue URL that is not on
loopback, unless SQS_EMULATOR_LISTEN names the address to listen on (0.0.0.0 in a container
that other containers reach by a host name, http://sqs:9324/...); it then creates its queues
through that address itself, never through the URL's host. moto checks no credentials: let
nothing but your own containers reach it.
Settings come from the environment and a .env file in the current folder, none on the command
line (the repository's .env.example and docs/settings.md list them). SIGTERM/SIGINT stop it.
"""


@dataclass(frozen=True)
class Listen:
    """Where the emulator listens, and the address its own client creates the queues at."""

    host: str  # what it binds: SQS_EMULATOR_LISTEN, else SQS_QUEUE_URL's loopback host
    port: int  # SQS_QUEUE_URL's
    self_url: str  # http://127.0.0.1:9324 for 0.0.0.0:9324: always this process, never AWS
    exposed: bool  # reachable beyond loopback


class Refused(ValueError):
    """The settings name a queue this emulator cannot serve; the message says which and why."""


def listen_address(settings: Settings) -> Listen:
    """Where to listen for `settings`, or :class:`Refused` saying why it cannot.

    Without SQS_EMULATOR_LISTEN the queue URL must be on loopback and AWS_ENDPOINT_URL_SQS
    unset (a URL elsewhere is for real AWS or another emulator). With it, any http queue URL
    is served at its port; AWS_ENDPOINT_URL_SQS may only name that same host and port.
    """
    url = urlsplit(settings.sqs_queue_url)
    if url.scheme != "http":
        raise Refused(f"SQS_QUEUE_URL={settings.sqs_queue_url} is not http://: moto serves HTTP")
    port = url.port or 80
    listen = settings.sqs_emulator_listen
    if listen is None:
        if not settings.queue_is_local or settings.aws_endpoint_url_sqs:
            raise Refused(
                f"SQS_QUEUE_URL={settings.sqs_queue_url} is not on loopback (or "
                "AWS_ENDPOINT_URL_SQS is set): the emulator serves a queue URL beyond loopback "
                "only with SQS_EMULATOR_LISTEN set to the address to listen on; leave it out "
                "when using real AWS (`honcho start server worker`)"
            )
        host = url.hostname or "127.0.0.1"
        return Listen(host=host, port=port, self_url=_http(host, port), exposed=False)
    endpoint = settings.aws_endpoint_url_sqs
    if endpoint and urlsplit(endpoint)[:2] != url[:2]:
        raise Refused(
            f"AWS_ENDPOINT_URL_SQS={endpoint} is not SQS_QUEUE_URL's host and port: its clients "
            "would call another SQS endpoint than this emulator"
        )
    address = ipaddress.ip_address(listen)  # the setting is validated as one
    if not address.is_unspecified and _ip_or_none(url.hostname) not in (None, address):
        raise Refused(
            f"SQS_EMULATOR_LISTEN={listen} is not SQS_QUEUE_URL's address ({url.hostname}): "
            "clients calling the queue URL would not reach the emulator"
        )
    # A wildcard address is reached from within at loopback, of the same family.
    own = ("127.0.0.1" if address.version == 4 else "::1") if address.is_unspecified else listen
    return Listen(
        host=listen, port=port, self_url=_http(own, port), exposed=not address.is_loopback
    )


def main(argv: list[str] | None = None) -> int:
    settings = start("sqs_emulator", DESCRIPTION, argv)
    if settings is None:
        return 2
    try:
        listen = listen_address(settings)
    except Refused as exc:
        logger.error("%s", exc)
        return 2
    if not _port_free(listen.host, listen.port):
        logger.error(
            "Cannot listen on %s:%d (SQS_EMULATOR_LISTEN, else SQS_QUEUE_URL): address in use",
            listen.host,
            listen.port,
        )
        return 1

    try:
        from moto.server import ThreadedMotoServer  # slow import; only after the checks
    except ImportError as exc:
        # The wheel's `local` extra; the clone's `local` dependency group has it.
        logger.error("moto is not installed (%s): pip install 'sqs-push-relay[local]'", exc)
        return 2

    if listen.exposed:
        logger.warning(
            "SQS_EMULATOR_LISTEN=%s: the emulator is reachable beyond loopback, and moto checks "
            "no credentials: anything that reaches this address can read and send messages; let "
            "only your own containers reach it",
            listen.host,
        )
    server = ThreadedMotoServer(ip_address=listen.host, port=listen.port, verbose=False)
    server.start()
    sqs = make_sqs_client(settings, app=EMULATOR_APP, emulator_url=listen.self_url)
    # A FIFO queue (a name ending .fifo) gets a FIFO dead-letter queue, as SQS requires.
    fifo = settings.queue_name.endswith(".fifo")
    attributes: dict[QueueAttributeNameType, str] = {"FifoQueue": "true"} if fifo else {}
    stem = settings.queue_name.removesuffix(".fifo")
    dlq_name = f"{stem}-dlq.fifo" if fifo else f"{stem}-dlq"
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.sqs_max_receive_count)}
    )
    sqs.create_queue(
        QueueName=settings.queue_name, Attributes={"RedrivePolicy": redrive, **attributes}
    )
    queue_url = settings.sqs_queue_url.rstrip("/")
    logger.info(
        "SQS emulator (moto) listening on %s; queue %s ready (dead-letter queue %s, "
        "after %d receives)",
        _http(listen.host, listen.port),
        queue_url,
        f"{queue_url.rsplit('/', 1)[0]}/{dlq_name}",
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


def _http(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ip_or_none(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host or "")
    except ValueError:
        return None  # a host name: where it leads is the network's business, not ours


def _port_free(host: str, port: int) -> bool:
    # ThreadedMotoServer waits forever if its thread cannot bind, so find out first.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
