"""`python -m bench.profile_worker`: where a worker process spends its CPU, by library.

Runs one process-mode stack on the fast back end, offers a steady rate, samples the worker
with py-spy (a sampling profiler: it does not slow the worker) and prints the share of its
on-CPU samples in boto3/botocore/urllib3 (the SQS calls), pyzmq, JSON, and the rest (the
relay's own code). Answers "what does the worker cost beyond boto3's own calls?".
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.runner import run_step
from bench.stack import Case, Stack

SQS_CALLS = ("botocore", "boto3", "urllib3", "http/client", "ssl.py", "socket.py", "email/")
GROUPS = (
    ("boto3/botocore/urllib3 (SQS calls)", SQS_CALLS),
    ("pyzmq (hand-off)", ("zmq/",)),
    ("json", ("json/",)),
    ("relay code (worker/, shared/)", ("worker/", "shared/")),
)  # fmt: skip


def classify(stack_line: str) -> str:
    # The innermost frame that belongs to a known group names the sample.
    for frame in reversed(stack_line.split(";")):
        for name, needles in GROUPS:
            if any(needle in frame for needle in needles):
                return name
    return "other (interpreter, threading, stdlib)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_worker", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=12)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy not found (it is a dev dependency: uv sync)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Case("handoff", "process", 1, 5, "fast", [args.rate]), Path(tmp))
        try:
            stack.start()
            worker = next(p for p in stack.procs if p.role == "workers")
            raw = Path(tmp) / "worker.txt"
            profiler = subprocess.Popen(
                [spy, "record", "--pid", str(worker.popen.pid),
                 "--duration", str(int(args.duration)), "--rate", "250", "--format", "raw",
                 "--output", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            step = run_step(stack, stack.case, args.rate, args.duration)
            profiler.wait(60)
            counts: collections.Counter[str] = collections.Counter()
            for line in raw.read_text().splitlines():
                frames, _, count = line.rpartition(" ")
                if "(idle)" in frames or not count.isdigit():
                    continue
                counts[classify(frames)] += int(count)
        finally:
            stack.stop()
    total = sum(counts.values()) or 1
    cpu_ms = step.cpu_s_per_1000.get("workers") or 0  # s per 1000 msgs = ms per msg
    shares = {name: count / total for name, count in counts.most_common()}
    summary = {"rate": args.rate, "delivered": step.delivered, "worker_cpu_ms_per_msg": cpu_ms}
    print(json.dumps(summary | {"shares": shares}, indent=2))
    for name, share in shares.items():
        print(f"{name:42} {share:6.1%}  ~{share * cpu_ms * 1000:5.0f} µs/msg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
