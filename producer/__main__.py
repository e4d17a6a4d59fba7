"""`python -m producer`: put events on the relay's queue from a shell (trying it out, tests).

`python -m producer --help` explains the options; :mod:`producer.publish` is the same from
Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from producer.publish import FifoError, PublishError, check_group, send_bodies
from shared.envelope import DISCONNECT_EVENT, DecodeError, Envelope
from shared.settings import Settings, SettingsError, load_settings
from shared.sqs import PRODUCER_APP, make_sqs_client
from shared.tracing import start_tracing

PROG = "python -m producer"

EXAMPLES = """\
examples:
  python -m producer --event order --data '{"id": 7}'         # every client of namespace /
  python -m producer --event order --room shop --data '"hi"'  # only clients in room shop
  python -m producer --event order --room a --room b          # rooms a and b, once each
  python -m producer --event shipped --user alice --user bob  # every connection of each
  python -m producer --raw '{"any": "json"}'                  # default event, body as data
  python -m producer --event tick --count 100                 # 100 events, data = {"n": i}
  python -m producer --disconnect alice --reason 'logged out' # close all of alice's connections
  python -m producer --event status --group order-7 --dedup-id 7-3  # to a FIFO queue

Prints the MessageId of a single message, then a summary line. Exits with 0 when SQS took
every message, 1 when it refused any or could not be reached, 2 for a bad argument or setting.
"""

DESCRIPTION = """\
Send events to the SQS queue the relay consumes (installed as the command sqs-relay-publish):
SQS_QUEUE_URL, read as the worker reads its settings, from the environment and a .env file in
the current folder (the repository's .env.example and docs/settings.md list them); by default
the embedded emulator's queue.

Each message is an envelope {"event", "data", "room", "user", "namespace"}, checked as the
worker will check it, so that an event it could never deliver (a reserved event name, NaN in
the data) is refused here instead of being dead-lettered there. --raw sends a body as it is.
--disconnect sends the relay's one command instead of an event: every connection of the user
is told the --reason and closed, on every server, and its older tokens are refused for
DISCONNECT_REVOKE_S.
A FIFO queue (a name ending .fifo) needs --group, the MessageGroupId: the relay keeps each
group's messages in the order sent. --dedup-id is the MessageDeduplicationId (with --count N,
"-<index>" is added to it for each message); leave it out only when the queue has content-based
de-duplication.
With OTEL_TRACES_EXPORTER=otlp the sends are one trace, whose id it prints: the relay's spans
for each event join it (docs/tracing.md).
"""


@dataclass(frozen=True)
class Command:
    """What the command line asks to send: the bodies, and for a FIFO queue their group and
    de-duplication ids."""

    bodies: list[str]
    group: str | None = None
    dedup_ids: list[str] | None = None


def parse_args(argv: list[str] | None) -> list[str]:
    """The SQS bodies the command line asks for (exits with 2 on a bad argument)."""
    return parse_command(argv).bodies


def parse_command(argv: list[str] | None) -> Command:
    """What the command line asks to send (exits with 2 on a bad argument)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--event", default="message", help="event name (default: message)")
    parser.add_argument(
        "--data", help='JSON data of the event (default: {"n": index}, counted from 0)'
    )
    parser.add_argument(
        "--room",
        action="append",
        help="deliver only to clients in this room; repeat for several rooms "
        "(default: every client of the namespace)",
    )
    parser.add_argument(
        "--user",
        action="append",
        help="deliver to every connection of this user (its token's sub); repeat for several "
        "users (with --room: to the rooms and the users)",
    )
    parser.add_argument("--namespace", default="/", help="Socket.IO namespace (default: /)")
    parser.add_argument(
        "--key",
        help="the entity the event is the state of (a state room keeps the latest per key)",
    )
    parser.add_argument(
        "--version",
        type=int,
        help="the state's version: a state room drops one not above the version it holds",
    )
    parser.add_argument(
        "--raw", help="send this body as it is instead of an envelope (ignores the options above)"
    )
    parser.add_argument("--count", type=int, default=1, help="how many messages (default: 1)")
    parser.add_argument(
        "--disconnect",
        action="append",
        metavar="USER",
        help="instead of an event, close every connection of this user (its token's sub) on "
        "every server; repeat for several users (ignores --event, --data, --room, --user, "
        "--namespace)",
    )
    parser.add_argument(
        "--reason", help="with --disconnect: what the user's clients are told (<= 200 characters)"
    )
    parser.add_argument(
        "--group",
        help="the MessageGroupId, required for a FIFO queue (a name ending .fifo) and refused "
        "for a standard one: the relay keeps each group's messages in the order sent",
    )
    parser.add_argument(
        "--dedup-id",
        help="the MessageDeduplicationId, for a FIFO queue without content-based "
        'de-duplication (with --count N: "-<index>" is added for each message)',
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.dedup_id is not None and args.group is None:
        parser.error("--dedup-id goes with --group (a FIFO queue)")
    bodies = _bodies(parser, args)
    dedup_ids = None
    if args.dedup_id is not None:
        dedup_ids = (
            [args.dedup_id]
            if args.count == 1
            else [f"{args.dedup_id}-{n}" for n in range(args.count)]
        )
    return Command(bodies, args.group, dedup_ids)


def _bodies(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    if args.raw is not None:
        return [args.raw] * args.count
    if args.reason is not None and not args.disconnect:
        parser.error("--reason goes with --disconnect")
    if args.disconnect:
        try:
            body = Envelope(
                event=DISCONNECT_EVENT,
                data=None if args.reason is None else {"reason": args.reason},
                user=_one_or_many(args.disconnect),
            ).to_body()
        except DecodeError as exc:
            parser.error(f"the worker would refuse this command ({exc.code}): {exc.reason}")
        return [body] * args.count
    try:
        data: Any = json.loads(args.data) if args.data is not None else None
    except json.JSONDecodeError as exc:
        parser.error(f"--data is not JSON: {exc}")
    room = _one_or_many(args.room)
    user = _one_or_many(args.user)
    try:
        bodies = [
            Envelope(
                event=args.event,
                data=data if args.data is not None else {"n": n},
                room=room,
                namespace=args.namespace,
                user=user,
                key=args.key,
                version=args.version,
            ).to_body()
            for n in range(args.count)
        ]
    except DecodeError as exc:
        parser.error(f"the worker would refuse this event ({exc.code}): {exc.reason}")
    return bodies


def _one_or_many(names: list[str] | None) -> str | tuple[str, ...] | None:
    if not names:
        return None
    return names[0] if len(names) == 1 else tuple(names)


def main(argv: list[str] | None = None) -> int:
    command = parse_command(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        check_group(settings.sqs_queue_url, command.group, command.dedup_ids)
    except FifoError as exc:
        option = "--group" if command.group is None else "--group/--dedup-id"
        print(f"{PROG}: {exc} ({option})", file=sys.stderr)
        return 2
    tracing = start_tracing(settings, service="sqs-relay-publish")
    if tracing is None:
        return _send(settings, command)
    # One trace for the command; each SendMessage(Batch) call is a `publish` span in it.
    try:
        with tracing.tracer.start_as_current_span("sqs-relay-publish") as span:
            code = _send(settings, command)
            print(f"trace {span.get_span_context().trace_id:032x}")
        return code
    finally:
        tracing.close(timeout_s=5.0)


def _send(settings: Settings, command: Command) -> int:
    bodies = command.bodies
    sqs = make_sqs_client(settings, app=PRODUCER_APP)
    started = time.perf_counter()
    try:
        message_ids: list[str | None] = list(
            send_bodies(
                sqs,
                settings.sqs_queue_url,
                bodies,
                groups=command.group,
                dedup_ids=command.dedup_ids,
            )
        )
    except PublishError as exc:
        for index, reason in sorted(exc.failures.items()):
            print(f"{PROG}: message {index} failed: {reason}", file=sys.stderr)
        message_ids = exc.message_ids
    except (BotoCoreError, ClientError) as exc:
        hint = " (is `honcho start` running?)" if settings.queue_is_local else ""
        print(f"{PROG}: cannot send to {settings.sqs_queue_url}{hint}: {exc}", file=sys.stderr)
        return 1
    elapsed_ms = (time.perf_counter() - started) * 1000
    if len(message_ids) == 1 and message_ids[0] is not None:
        print(f"MessageId {message_ids[0]}")
    sent = sum(message_id is not None for message_id in message_ids)
    summary = f"sent {sent} of {len(bodies)} message(s) in {elapsed_ms:.0f} ms"
    print(f"{summary} to {settings.sqs_queue_url}")
    return 0 if sent == len(bodies) else 1


if __name__ == "__main__":
    sys.exit(main())
