"""`python -m bench.producer`: send bench events to SQS at a controlled rate for a while.

Each body is an envelope ``{"event": "bench", "data": {"seq": n, "t": <send time>}}``; the
clients measure latency from ``t``. Sends in batches (SendMessageBatch) of up to 10 and of
at most what `BATCH_SPAN_S` of the rate holds, paced so the offered rate holds: 0.25/s is
one message every 4 s, not ten at once every 40 s. Prints one JSON summary line at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from producer import PublishError, publish_batch
from shared.envelope import Envelope

#: A batch holds at most the messages this much of the offered rate spans (and at most 10).
BATCH_SPAN_S = 0.1


def make_client(endpoint: str) -> Any:
    return boto3.session.Session(region_name="us-east-1").client(
        "sqs",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"mode": "standard"}, max_pool_connections=20),
    )


def batch_size(rate: float) -> int:
    """Messages per SendMessageBatch at `rate` messages/s: 10 from 100/s up, fewer below, so
    that a low rate is offered as that rate and not as bursts."""
    return max(1, min(10, int(rate * BATCH_SPAN_S)))


def produce(
    endpoint: str,
    queue_url: str,
    rate: float,
    duration_s: float,
    threads: int,
    seq_start: int = 0,
) -> dict[str, Any]:
    """Offer `rate` messages/s for `duration_s`, split over `threads` senders."""
    total = int(rate * duration_s)
    size = batch_size(rate)
    batches = [list(range(start, min(total, start + size))) for start in range(0, total, size)]
    started = time.time() + 0.05
    sent = [0] * threads
    errors: list[str] = []
    late = [0.0] * threads

    def sender(k: int) -> None:
        sqs = make_client(endpoint)
        for i in range(k, len(batches), threads):
            due = started + batches[i][0] / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)  # pacing to the offered rate
            else:
                late[k] = max(late[k], -delay)
            envelopes = [
                Envelope("bench", {"seq": seq_start + seq, "t": time.time()}) for seq in batches[i]
            ]
            try:
                sent[k] += len(publish_batch(sqs, queue_url, envelopes))
            except PublishError as exc:
                sent[k] += sum(message_id is not None for message_id in exc.message_ids)
                errors.append(repr(exc))
            except Exception as exc:
                errors.append(repr(exc))

    workers = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.time() - started
    return {
        "cpu_s": time.process_time(),
        "offered": total,
        "sent": sum(sent),
        "elapsed_s": elapsed,
        "achieved_rate": sum(sent) / elapsed if elapsed > 0 else 0,
        "max_late_s": max(late),
        "errors": errors[:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer", description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="messages per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--threads", type=int, default=2, help="sender threads")
    parser.add_argument("--seq-start", type=int, default=0, help="first sequence number")
    args = parser.parse_args(argv)
    summary = produce(
        args.endpoint, args.queue_url, args.rate, args.duration, args.threads, args.seq_start
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
