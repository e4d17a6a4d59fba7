"""`python -m bench.hotpath TREE [TREE ...]`: the CPU of the relay's per-message code, in process.

What a worker does with each batch of ten, without SQS or ZeroMQ: decode each message into
its envelope, make its delivery, encode the batch for the wire, and what the server does with
it on arrival (decode the wire, make the deliveries); deleting goes to a stand-in that answers
at once. Each TREE is a checkout (a git worktree of another commit, say) whose code is
imported in a fresh interpreter with the same venv; the figures are CPU microseconds per
message (`time.process_time`), the median of 7 runs of --batches batches (5,000) after
2,000 to warm up.

Beside `python -m bench tracing` (the whole relay, whose worker CPU per message is mostly
boto3's), this isolates the code a change touched: e.g. traces off against the commit before
traces existed (CHANGELOG.md). Run the trees in turns, twice or more: the machine is shared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

_PROGRAM = r"""
import json, statistics, sys, threading, time
from shared.counters import Counters
from shared.settings import load_settings
from shared.wire import decode, deliver, parse_deliver
from worker.consumer import Worker

def message(n):
    body = {"event": "e", "data": {"n": n, "text": "x" * 100}, "room": "shop"}
    return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": json.dumps(body),
            "Attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"}}

class Sqs:  # deletes at once
    def delete_message_batch(self, **_):
        return {"Successful": []}

class Handoff:  # the wire both ways, and every message confirmed
    def deliver(self, deliveries, stop, **_):
        _kind, body = decode(deliver(1, deliveries))
        parse_deliver(body)
        return {d.message_id for d in deliveries}

settings = load_settings({"SQS_QUEUE_URL": "http://127.0.0.1:1/123456789012/q"})
worker = Worker(settings=settings, sqs=Sqs(), handoff=Handoff(), stop=threading.Event(),
                counters=Counters())
batch = [message(n) for n in range(10)]
batches = int(sys.argv[1])
for _ in range(batches * 2 // 5):
    worker._handle(batch)
runs = []
for _ in range(7):
    started = time.process_time()
    for _ in range(batches):
        worker._handle(batch)
    runs.append((time.process_time() - started) / (batches * 10) * 1e6)
print(f"{statistics.median(runs):.2f} {min(runs):.2f} {max(runs):.2f}")
"""


def measure(tree: str, batches: int = 5000) -> tuple[float, float, float]:
    """(median, min, max) CPU microseconds per message of `tree`'s code."""
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(batches)],
        env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin"},
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip()[-2000:]}")
    median, low, high = (float(x) for x in done.stdout.split())
    return median, low, high


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hotpath",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("trees", nargs="+", help="checkouts to measure, in turns")
    parser.add_argument("--turns", type=int, default=2, help="rounds over the trees (default 2)")
    parser.add_argument(
        "--batches", type=int, default=5000, help="batches of ten per run (default 5000)"
    )
    args = parser.parse_args(argv)
    for turn in range(1, args.turns + 1):
        for tree in args.trees:
            median, low, high = measure(tree, args.batches)
            print(f"turn {turn}  {tree}: {median:.2f} us/message (runs {low:.2f}-{high:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
