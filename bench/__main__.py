"""`python -m bench`: this design (worker processes) against the alternatives, side by side.

Each case runs on a fresh stack on loopback; within a case the offered rate steps up until
a step is not sustained: a rate is sustained only while p99 latency stays at or under 100 ms
and at least 99% of what was sent is delivered (bench/results.py), because a user calls a
second of delay broken, whatever the throughput.

Modes:
  minimal xK      the floor: the smallest correct relay of the same design (stock
                  AsyncServer, ROUTER acks, K stop-and-wait boto3 worker processes,
                  MessageId de-duplication; no replay, rooms, metrics or auth); the ratio
                  columns of the report are against it
  process xK      this project: K `python -m worker` processes, ZeroMQ to the server
  thread xK       the same worker code as K threads inside the server (CONSUMER=thread)
  thread-direct   one thread, blocking boto3, emits via asyncio.run_coroutine_threadsafe
  naive           the recipe as written (its own event loop in a thread, no delete)
  aiobotocore     an async consumer in the server's event loop
  redis-manager   worker process emits through socketio.RedisManager; server uses
                  AsyncRedisManager with a real redis-server

Regimes:
  handoff   few clients (5), high message rates: the worker's boto3 CPU is what thread
            mode pays for, holding the GIL in the server process
  fanout    many clients (50, over two client processes): python-socketio's emit dominates

SQS back ends (--backend), named in every table:
  fast      bench/fakesqs.py: an in-memory load source speaking SQS's JSON protocol (only
            the calls the worker makes), with an optional round-trip delay (--delay-ms)
  moto      the embedded emulator the tests use; realistic but it tops out near 70-80
            messages/s end to end here, so every mode looks the same on it

Measured per step: latency from the producer's send to the client's receive, and from the
worker's receive to the client's receive (p50/p95/p99/max, HdrHistogram); delivered
messages/s; the server's event-loop lag (its in-process probe) and a client's ping round
trip; CPU seconds per 1,000 messages for each role (psutil); peak RSS; queue depth.

Writes results.json, report.md and PNG plots to --out, and prints a summary table.

`python -m bench soak --help`: the soak run instead (bench/soak.py): clients churning on
one stack for half an hour or more, the server's memory, descriptors, tasks, GC-tracked
objects and latency sampled, and their slopes after warm-up.

`python -m bench tracing --help`: what the relay's OpenTelemetry traces cost (bench/tracing.py):
the commit before traces, traces off, on at 1% and on at 100%, interleaved on the hand-off
regime; CPU per message, latency and delivery, each against the commit before.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bench.results import BenchResults, CaseResult, RunMeta, StepResult
from bench.runner import run_case
from bench.stack import Case
from bench.summary import print_summary

MODES = ("minimal", "process", "thread", "thread-direct", "naive", "aiobotocore", "redis-manager")
RATES = {
    ("handoff", "fast"): [250, 500, 750, 1000, 1500, 2000, 3000],
    ("fanout", "fast"): [50, 100, 200, 400, 800],
    ("handoff", "moto"): [20, 40, 60, 80, 100],
    ("fanout", "moto"): [20, 40, 60],
}
CLIENTS = {"handoff": 5, "fanout": 50}


def plan(args: argparse.Namespace) -> list[Case]:
    cases: list[Case] = []
    for regime in args.regimes:
        default_clients = (3 if regime == "handoff" else 10) if args.quick else CLIENTS[regime]
        clients = args.clients or default_clients
        rates = args.rates or ([100] if args.quick else RATES[(regime, args.backend)])
        for mode in args.modes:
            if mode in ("process", "thread"):
                counts = [1] if args.quick else ([1, 2, 4] if regime == "handoff" else [2])
            elif mode == "minimal":
                counts = [1] if args.quick else [2]  # the floor beside process x2, thread x2
            else:
                counts = [1]
            if args.quick and regime == "fanout" and mode not in ("minimal", "process", "thread"):
                continue
            if regime == "fanout" and mode == "naive" and not args.quick:
                continue  # it never deletes: its fan-out figures would measure redelivery
            pins = {"no": [False], "yes": [True], "both": [False, True]}[args.pin]
            cases += [
                Case(regime, mode, k, clients, args.backend, list(rates), pinned)
                for pinned in pins
                for k in counts
            ]
    return cases


def run_all(
    cases: list[Case], args: argparse.Namespace, duration_s: float, logs: Path, console: Console
) -> list[CaseResult]:
    """Every case in turn, with a progress bar and a line per step on ``console``."""
    results: list[CaseResult] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        overall = progress.add_task("cases", total=len(cases))
        for case in cases:
            task = progress.add_task(f"{case.group} {case.label}", total=len(case.rates))

            def on_step(step: StepResult, task: TaskID = task, case: Case = case) -> None:
                p99 = step.latency_ms.p99
                progress.console.print(
                    f"  {case.group:8} {case.label:14} {step.offered_rate:>6.0f}/s offered  "
                    f"{step.delivered_rate or 0:>7.1f}/s delivered  p99 "
                    + (f"{p99:8.1f} ms" if p99 is not None else "       —")
                    + ("  [red]saturated[/]" if step.saturated else "")
                )
                progress.advance(task)

            result = run_case(
                case, duration_s=duration_s, log_dir=logs, delay_ms=args.delay_ms,
                keep_going=args.keep_going, on_step=on_step,
            )  # fmt: skip
            results.append(result)
            progress.update(task, completed=len(case.rates))
            progress.advance(overall)
    return results


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["soak"]:
        from bench.soak import main as soak_main

        return soak_main(arguments[1:])
    if arguments[:1] == ["tracing"]:
        from bench.tracing import main as tracing_main

        return tracing_main(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="every mode once, small and short (< 2 min)"
    )
    parser.add_argument("--backend", choices=["fast", "moto"], default="fast")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="fast back end: added round trip"
    )
    parser.add_argument(
        "--modes", type=lambda s: s.split(","), default=list(MODES), help="comma list, default: all"
    )
    parser.add_argument("--regimes", type=lambda s: s.split(","), default=["handoff", "fanout"])
    parser.add_argument(
        "--rates",
        type=lambda s: [float(r) for r in s.split(",")],
        help="offered msgs/s, comma list",
    )
    parser.add_argument("--duration", type=float, help="seconds per step (default 6, quick 2)")
    parser.add_argument(
        "--clients", type=int, help="clients per case (default: 5 handoff, 50 fanout)"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="do not stop a case at saturation"
    )
    parser.add_argument(
        "--pin",
        choices=["no", "yes", "both"],
        default="no",
        help="pin the server process to its own core and everything else (workers, load "
        "source, producer, clients, this harness) to the rest; both: every case twice, "
        "unpinned and pinned, reported as separate regimes (<regime>-pinned)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default bench/out/<time>)")
    args = parser.parse_args(argv)
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    duration = args.duration or (2.0 if args.quick else 6.0)
    started = datetime.now(UTC)
    out: Path = args.out or Path("bench/out") / started.strftime("%Y%m%d-%H%M%S")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cases = plan(args)
    console = Console(stderr=True)
    console.print(f"[bold]{len(cases)} cases[/] on the {args.backend} back end; output in {out}")
    meta = RunMeta.here(
        "python -m bench",
        argv,
        started,
        quick=args.quick,
        backend=args.backend,
        backend_delay_ms=args.delay_ms,
    )
    t0 = time.monotonic()
    case_results = run_all(cases, args, duration, logs, console)
    meta = meta.model_copy(update={"duration_s": round(time.monotonic() - t0, 1)})
    results = BenchResults(meta=meta, cases=case_results)
    results.save(out / "results.json")
    from bench.report import write_report  # matplotlib: slow to import, not needed for --help

    written = write_report(results, out)
    print_summary(results, Console())
    console.print(f"wrote {out / 'results.json'} and {', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
