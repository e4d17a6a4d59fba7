"""`python -m worker.send`: put events on the queue, for trying the relay out and for tests.

Examples::

    python -m worker.send --event order --data '{"id": 7}'          # envelope, every client
    python -m worker.send --event order --room shop --data '"hi"'   # only clients in room shop
    python -m worker.send --raw '{"any": "json"}'                   # default event, body as data
    python -m worker.send --event tick --count 100                  # 100 events, data = {"n": i}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.settings import SettingsError, load_settings
from shared.sqs import make_sqs_client


def build_bodies(args: argparse.Namespace) -> list[str]:
    """The SQS bodies the command line asks for."""
    if args.raw is not None:
        return [args.raw] * args.count
    bodies = []
    for n in range(args.count):
        data: Any = json.loads(args.data) if args.data is not None else {"n": n}
        envelope: dict[str, Any] = {"event": args.event, "data": data}
        if args.room:
            envelope["room"] = args.room
        if args.namespace != "/":
            envelope["namespace"] = args.namespace
        bodies.append(json.dumps(envelope))
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.send",
        description="Send events to the SQS queue in SQS_QUEUE_URL (settings as for the worker).",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--event", default="message", help="event name (default: message)")
    parser.add_argument("--data", help='JSON data for the event (default: {"n": index})')
    parser.add_argument("--room", help="deliver only to clients in this room")
    parser.add_argument("--namespace", default="/", help="Socket.IO namespace (default: /)")
    parser.add_argument("--raw", help="send this body as it is instead of an envelope")
    parser.add_argument("--count", type=int, default=1, help="how many messages (default: 1)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.data is not None:
        try:
            json.loads(args.data)
        except json.JSONDecodeError as exc:
            parser.error(f"--data is not JSON: {exc}")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"send: {exc}", file=sys.stderr)
        return 2

    sqs = make_sqs_client(settings)
    bodies = build_bodies(args)
    started = time.perf_counter()
    sent = 0
    for start in range(0, len(bodies), 10):  # SendMessageBatch takes up to 10 entries
        chunk = bodies[start : start + 10]
        try:
            response = sqs.send_message_batch(
                QueueUrl=settings.sqs_queue_url,
                Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(chunk)],
            )
        except (BotoCoreError, ClientError) as exc:
            hint = " (is `honcho start` running?)" if settings.queue_is_local else ""
            print(f"send: cannot send to {settings.sqs_queue_url}{hint}: {exc}", file=sys.stderr)
            return 1
        for failure in response.get("Failed", []):
            print(
                f"send: message {start + int(failure['Id'])} failed: {failure['Message']}",
                file=sys.stderr,
            )
        for success in response.get("Successful", []):
            if len(bodies) == 1:
                print(f"MessageId {success['MessageId']}")
        sent += len(response.get("Successful", []))
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(
        f"sent {sent} of {len(bodies)} message(s) in {elapsed_ms:.0f} ms "
        f"to {settings.sqs_queue_url}"
    )
    return 0 if sent == len(bodies) else 1


if __name__ == "__main__":
    sys.exit(main())
