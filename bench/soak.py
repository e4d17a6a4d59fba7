"""`python -m bench soak` (or `python -m bench.soak`): hours of churn on one stack, sampled.

Starts the fast SQS back end (bench/fakesqs.py), one server and two `python -m worker`
processes, then for --minutes keeps the stack busy the way production does:

- clients come and go: about --connects-per-s connects a second while fewer than --clients are
  connected; each (a python-socketio client in this process) joins --rooms-per-client of
  --rooms rooms, halfway through its life leaves one and joins another, stays for a random
  time (exponential, mean --clients / --connects-per-s) and disconnects;
- a share of them (--resume-share) come back 1-5 s later as a resume: the connect's `since`
  and each room's `since` from the positions they last saw, and count what the server answers
  (`recovered` true or false);
- a producer thread offers --broadcast-per-s room-less events and --room-per-s events to a
  random room, at a steady pace (SendMessageBatch, one batch per 0.1 s at most);
- every --restart-every-s one worker is stopped (SIGTERM, as a deploy does) and started again.

Every --sample-s it samples the server: resident memory and open file descriptors (psutil),
`relay_asyncio_tasks` and `relay_gc_objects` (its /metrics), the event-loop lag p99 and the
server's end-to-end p50/p99 (SQS SentTimestamp to emit) over the interval (its /metrics
histograms, interpolated within buckets), and the clients' latency p50/p99 (the producer's
send time to the client's receive, HdrHistogram, live events only: a replay's age is not a
latency).

After a warm-up (--warmup-minutes) it fits a straight line to each series by least squares
(numpy.polyfit; its standard error by hand from the residuals) and gives the slope per hour.
A series *grows* when its slope is above zero by more than twice its standard error and
adds more than --growth-pct % of its mean per hour; otherwise it is flat. The samples are
autocorrelated, so the standard error is optimistic: the first-quarter and last-quarter
medians after warm-up are given beside it as a check that needs no model, and so is the
slope with the connected clients held fixed (least squares on time and clients together),
since the churn holds the load steady only on average, and that slope again over the last
half alone (a high-water mark levels off, a leak keeps its slope). Then every client leaves,
nothing is sent for --idle-s, and one more sample says what the server holds idle, beside the
first.

--heapwatch runs the server through bench/heapwatch.py (its code unchanged): every sample
then also says where its memory is (pymalloc's arenas and the bytes in use in them, glibc
malloc's heap in use and free), and at five points (idle before, end of warm-up, halfway,
end, idle after) the server makes a full collection and counts its live GC-tracked objects
by type; the report lists the types that grew from the end of warm-up to the end, and from
idle before to idle after. --tracemalloc does the same with tracemalloc on and adds the top
15 tracebacks that grew (`Snapshot.compare_to(..., "traceback")`): a diagnosis, since
tracemalloc costs tens of MB and its snapshots' peaks raise the RSS for good.

Writes soak.json (every sample), soak.md (the slopes) and soak.png to --out;
--from-json writes soak.md and soak.png again from a soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import socketio
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench import heapwatch
from bench.measure import bucket_percentiles
from bench.producer import make_client
from bench.results import RunMeta
from bench.stack import PYTHON, Case, Proc, Stack
from producer import publish_batch
from shared.envelope import Envelope

#: Latencies above this are clipped (a client that waited this long is a finding anyway).
_MAX_US = 120_000_000
#: Series the report fits, with their unit and what they show.
SERIES: dict[str, tuple[str, str]] = {
    "server_rss_mb": ("MB", "server resident memory"),
    "server_fds": ("fds", "server open file descriptors"),
    "asyncio_tasks": ("tasks", "server asyncio tasks"),
    "gc_objects": ("objects", "server GC-tracked objects"),
    "connected": ("clients", "connected clients (the load, for scale)"),
    "loop_lag_p99_ms": ("ms", "event-loop lag p99"),
    "client_p50_ms": ("ms", "end-to-end p50 (producer send to client receive)"),
    "client_p99_ms": ("ms", "end-to-end p99 (producer send to client receive)"),
    "server_e2e_p99_ms": ("ms", "SQS SentTimestamp to emit p99 (server histogram)"),
    # with --heapwatch or --tracemalloc only (bench/heapwatch.py's breakdown.jsonl)
    "pymalloc_arenas_mb": ("MB", "pymalloc arenas (Python objects up to 512 bytes)"),
    "pymalloc_used_mb": ("MB", "pymalloc bytes in allocated blocks"),
    "malloc_used_mb": ("MB", "glibc malloc heap in use (larger objects, C libraries)"),
    "malloc_free_mb": ("MB", "glibc malloc heap free but held"),
}
#: The series that say whether something leaks (the others say whether latency drifts).
RESOURCES = ("server_rss_mb", "server_fds", "asyncio_tasks", "gc_objects")


@dataclass
class SoakConfig:
    minutes: float = 31.0
    warmup_minutes: float = 5.0
    clients: int = 200
    connects_per_s: float = 4.0
    rooms: int = 8
    rooms_per_client: int = 2
    broadcast_per_s: float = 2.0
    room_per_s: float = 10.0
    resume_share: float = 0.25
    restart_every_s: float = 180.0
    sample_s: float = 10.0
    growth_pct: float = 5.0
    idle_s: float = 30.0
    #: run the server through bench/heapwatch.py: where its memory is, GC types that grew
    heapwatch: bool = False
    #: the same with tracemalloc on: the tracebacks that grew
    tracemalloc: bool = False
    tracemalloc_frames: int = 10

    @property
    def mean_life_s(self) -> float:
        return self.clients / self.connects_per_s


@dataclass
class Sample:
    t_s: float
    server_rss_mb: float | None = None
    server_fds: int | None = None
    asyncio_tasks: float | None = None
    gc_objects: float | None = None
    connected: float | None = None
    loop_lag_p99_ms: float | None = None
    server_e2e_p50_ms: float | None = None
    server_e2e_p99_ms: float | None = None
    client_p50_ms: float | None = None
    client_p99_ms: float | None = None
    client_events: int = 0
    workers_rss_mb: float | None = None
    harness_rss_mb: float | None = None
    #: the machine's 1-minute load average: other work on it shows in the latencies
    load_1m: float | None = None
    emitted_total: float | None = None
    sent_total: int = 0
    connects_total: int = 0
    resumes_total: int = 0
    #: --heapwatch: where the server's memory is (bench/heapwatch.py's breakdown)
    pymalloc_arenas_mb: float | None = None
    pymalloc_used_mb: float | None = None
    malloc_used_mb: float | None = None
    malloc_free_mb: float | None = None


@dataclass
class Tallies:
    """What the churn and the producer did, for the report."""

    connects: int = 0
    connect_errors: int = 0
    disconnects: int = 0
    resumes: int = 0
    resumes_recovered: int = 0
    resumes_not_recovered: int = 0
    not_recovered_reasons: dict[str, int] = field(default_factory=dict)
    joins: int = 0
    joins_refused: int = 0
    leaves: int = 0
    live_events: int = 0
    replayed_events: int = 0
    duplicates: int = 0
    sent: int = 0
    send_errors: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)


@dataclass
class Restart:
    t_s: float
    worker: str
    exit_code: int | None
    stop_s: float
    reconnected_s: float | None


@dataclass
class Fit:
    series: str
    unit: str
    n: int
    mean: float
    slope_per_h: float
    stderr_per_h: float
    r2: float
    first_quarter_median: float
    last_quarter_median: float
    grows: bool
    #: the slope with the number of connected clients held fixed (least squares on time and
    #: `connected` together): the churn's load is steady only on average
    slope_per_h_fixed_load: float | None = None
    stderr_per_h_fixed_load: float | None = None
    #: the same (at fixed load where known) over the last half of the samples after warm-up
    #: alone: a high-water mark levels off, a leak keeps its slope
    slope_per_h_last_half: float | None = None
    stderr_per_h_last_half: float | None = None


@dataclass
class Departed:
    """A client that left and will come back to resume."""

    due: float
    since: dict[str, Any] | None
    rooms: dict[str, dict[str, Any] | None]


def _hist() -> HdrHistogram:
    return HdrHistogram(1, _MAX_US, 3)


class Churn:
    """Clients connecting, joining, leaving and resuming at a steady rate, in this process."""

    def __init__(self, url: str, config: SoakConfig, tallies: Tallies) -> None:
        self.url = url
        self.config = config
        self.tallies = tallies
        self.window = _hist()
        self.active = 0
        self.departed: list[Departed] = []
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rooms = [f"soak-{n}" for n in range(config.rooms)]

    def take_window(self) -> HdrHistogram:
        window, self.window = self.window, _hist()
        return window

    async def run(self) -> None:
        interval = 1 / self.config.connects_per_s
        while not self._stop.is_set():
            if self.active < self.config.clients:
                self.active += 1
                now = time.monotonic()
                due = next((d for d in self.departed if d.due <= now), None)
                if due is not None:
                    self.departed.remove(due)
                task = asyncio.create_task(self._session(due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _session(self, resume: Departed | None) -> None:
        try:
            await self._client(resume)
        except Exception as exc:  # one client's failure is counted, not fatal
            self.tallies.error(f"client: {exc!r}")
        finally:
            self.active -= 1

    async def _client(self, resume: Departed | None) -> None:
        config, tallies = self.config, self.tallies
        positions: dict[str | None, dict[str, Any] | None] = {None: None}
        live: set[str | None] = set()
        seen: set[tuple[str | None, str]] = set()
        sio = socketio.AsyncClient(reconnection=False)

        def advance(room: str | None, epoch: Any, offset: Any) -> None:
            if epoch is None or not isinstance(offset, int):
                return
            known = positions.get(room)
            if known is None or known["epoch"] != epoch or known["offset"] < offset:
                positions[room] = {"epoch": epoch, "offset": offset}

        async def on_recovery(answer: Any) -> None:
            if not isinstance(answer, dict) or answer.get("room") is not None:
                return
            advance(None, answer.get("epoch"), answer.get("offset"))
            live.add(None)
            if resume is not None and "recovered" in answer:
                if answer["recovered"]:
                    tallies.resumes_recovered += 1
                else:
                    tallies.resumes_not_recovered += 1
                    reason = str(answer.get("reason", "?"))
                    tallies.not_recovered_reasons[reason] = (
                        tallies.not_recovered_reasons.get(reason, 0) + 1
                    )

        async def on_any(event: str, payload: Any = None, *_: Any) -> None:
            if event != "bench" or not isinstance(payload, dict):
                return
            room = payload.get("room")
            key = (room, str(payload.get("id")))
            if key in seen:
                tallies.duplicates += 1
                return
            seen.add(key)
            advance(room, payload.get("epoch"), payload.get("offset"))
            data = payload.get("data")
            if room in live and isinstance(data, dict) and "t" in data:
                tallies.live_events += 1
                latency_us = int((time.time() - data["t"]) * 1e6)
                self.window.record_value(min(_MAX_US, max(1, latency_us)))
            else:
                tallies.replayed_events += 1

        sio.on("relay:recovery", handler=on_recovery)
        sio.on("*", handler=on_any)
        since = resume.since if resume is not None else None
        try:
            await sio.connect(
                self.url, auth={"since": since}, transports=["websocket"], wait_timeout=10
            )
        except Exception as exc:
            tallies.connect_errors += 1
            tallies.error(f"connect: {exc!r}")
            return
        tallies.connects += 1
        if resume is not None:
            tallies.resumes += 1
        try:
            rooms = (
                dict(resume.rooms)
                if resume is not None
                else dict.fromkeys(random.sample(self._rooms, config.rooms_per_client))
            )
            for room, room_since in rooms.items():
                await self._join(sio, room, room_since, positions, live, advance)
            life = min(random.expovariate(1 / config.mean_life_s), 4 * config.mean_life_s)
            if await self._stopped_within(life / 2):
                return
            joined = [r for r in positions if r is not None]
            if joined:
                left = random.choice(joined)
                answer = await sio.call("leave", left, timeout=10)
                tallies.leaves += 1
                positions.pop(left, None)
                live.discard(left)
                if not (isinstance(answer, dict) and answer.get("ok")):
                    tallies.error(f"leave refused: {answer!r}")
                others = [r for r in self._rooms if r not in positions]
                await self._join(sio, random.choice(others), None, positions, live, advance)
            if await self._stopped_within(life / 2):
                return
        finally:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            tallies.disconnects += 1
        if random.random() < config.resume_share:
            self.departed.append(
                Departed(
                    due=time.monotonic() + random.uniform(1, 5),
                    since=positions.get(None),
                    rooms={r: p for r, p in positions.items() if r is not None},
                )
            )

    async def _join(
        self,
        sio: socketio.AsyncClient,
        room: str,
        since: dict[str, Any] | None,
        positions: dict[str | None, dict[str, Any] | None],
        live: set[str | None],
        advance: Any,
    ) -> None:
        request: Any = {"room": room, "since": since} if since is not None else room
        answer = await sio.call("join", request, timeout=10)
        self.tallies.joins += 1
        if not (isinstance(answer, dict) and answer.get("ok")):
            self.tallies.joins_refused += 1
            self.tallies.error(f"join refused: {answer!r}")
            return
        positions.setdefault(room, None)
        advance(room, answer.get("epoch"), answer.get("offset"))
        live.add(room)
        if since is not None and "recovered" in answer:
            if answer["recovered"]:
                self.tallies.resumes_recovered += 1
            else:
                self.tallies.resumes_not_recovered += 1
                reason = str(answer.get("reason", "?"))
                self.tallies.not_recovered_reasons[reason] = (
                    self.tallies.not_recovered_reasons.get(reason, 0) + 1
                )

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()


class Producer:
    """Room-less and room events at a steady rate, from a thread (boto3 blocks)."""

    def __init__(self, stack: Stack, config: SoakConfig, tallies: Tallies) -> None:
        self.stack = stack
        self.config = config
        self.tallies = tallies
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)

    def _run(self) -> None:
        config = self.config
        sqs = make_client(self.stack.endpoint)
        rate = config.broadcast_per_s + config.room_per_s
        tick = max(0.1, 1 / rate) if rate > 0 else 1.0
        rooms = [f"soak-{n}" for n in range(config.rooms)]
        seq = 0
        owed = 0.0
        next_at = time.monotonic()
        while not self.stop.is_set() and rate > 0:
            owed += rate * tick
            batch: list[Envelope] = []
            while owed >= 1 and len(batch) < 10:
                owed -= 1
                share = config.broadcast_per_s / rate
                room = None if random.random() < share else random.choice(rooms)
                batch.append(Envelope("bench", {"seq": seq, "t": time.time()}, room=room))
                seq += 1
            if batch:
                try:
                    self.tallies.sent += len(publish_batch(sqs, self.stack.queue_url, batch))
                except Exception as exc:
                    self.tallies.send_errors += 1
                    self.tallies.error(f"send: {exc!r}")
            next_at += tick
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def scrape(url: str) -> dict[str, Any]:
    """The server's /metrics: each plain sample by name, and the two histograms' buckets."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, Any] = {"lag": {}, "e2e": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "relay_event_loop_lag_seconds_bucket":
                found["lag"][float(sample.labels["le"])] = sample.value
            elif sample.name == "relay_end_to_end_seconds_bucket":
                found["e2e"][float(sample.labels["le"])] = sample.value
            elif not sample.labels:
                found[sample.name] = sample.value
    return found


class Sampler:
    """Reads the figures of one sample; holds the previous scrape for the interval's
    histograms."""

    def __init__(
        self, stack: Stack, server: psutil.Process, started: float, heap_dir: Path | None = None
    ) -> None:
        self.breakdown = heap_dir / heapwatch.BREAKDOWN_FILE if heap_dir is not None else None
        self.stack = stack
        self.server = server
        self.started = started
        self.previous: dict[str, Any] = {"lag": {}, "e2e": {}}
        self.harness = psutil.Process()

    def take(self, churn: Churn, tallies: Tallies) -> Sample:
        sample = Sample(t_s=round(time.monotonic() - self.started, 1))
        with contextlib.suppress(psutil.Error):
            sample.server_rss_mb = round(self.server.memory_info().rss / 2**20, 2)
            sample.server_fds = self.server.num_fds()
        workers = 0.0
        for proc in self.stack.procs:
            if proc.role == "workers" and proc.process.alive():
                with contextlib.suppress(psutil.Error):
                    workers += proc.ps.memory_info().rss
        sample.workers_rss_mb = round(workers / 2**20, 2)
        sample.harness_rss_mb = round(self.harness.memory_info().rss / 2**20, 2)
        sample.load_1m = round(os.getloadavg()[0], 2)
        try:
            metrics = scrape(self.stack.url)
        except Exception as exc:
            tallies.error(f"scrape: {exc!r}")
        else:
            sample.asyncio_tasks = metrics.get("relay_asyncio_tasks")
            sample.gc_objects = metrics.get("relay_gc_objects")
            sample.connected = metrics.get("relay_connected_clients")
            sample.emitted_total = metrics.get("relay_emitted_total")
            if self.previous["lag"]:
                sample.loop_lag_p99_ms = _round(
                    bucket_percentiles(self.previous["lag"], metrics["lag"]).p99
                )
                e2e = bucket_percentiles(self.previous["e2e"], metrics["e2e"])
                sample.server_e2e_p50_ms = _round(e2e.p50)
                sample.server_e2e_p99_ms = _round(e2e.p99)
            self.previous = metrics
        window = churn.take_window()
        sample.client_events = window.get_total_count()
        if sample.client_events:
            sample.client_p50_ms = _round(window.get_value_at_percentile(50) / 1000)
            sample.client_p99_ms = _round(window.get_value_at_percentile(99) / 1000)
        sample.sent_total = tallies.sent
        sample.connects_total = tallies.connects
        sample.resumes_total = tallies.resumes
        if self.breakdown is not None:
            self._add_breakdown(sample)
        return sample

    def _add_breakdown(self, sample: Sample) -> None:
        """The server's latest memory breakdown (written every 10 s), if it is recent."""
        try:
            with self.breakdown.open("rb") as lines:  # type: ignore[union-attr]
                lines.seek(0, os.SEEK_END)
                lines.seek(max(0, lines.tell() - 4096))
                latest = json.loads(lines.read().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            return
        if time.time() - latest["wall_time"] > 30:
            return
        for name in ("pymalloc_arenas_mb", "pymalloc_used_mb", "malloc_used_mb", "malloc_free_mb"):
            setattr(sample, name, latest.get(name))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _workers_connected(url: str) -> int:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        return int(json.loads(response.read()).get("workers_connected", 0))


def restart_worker(stack: Stack, index: int, started: float) -> Restart:
    """SIGTERM one live worker (the `index`-th, round robin), start another in its place, and
    wait until the server counts two workers again."""
    workers = [p for p in stack.procs if p.role == "workers" and p.process.alive()]
    victim: Proc = workers[index % len(workers)]
    t_s = round(time.monotonic() - started, 1)
    code, stop_s = victim.process.stop(signal.SIGTERM, timeout_s=10)
    stack.spawn("workers", f"worker-r{index}", [PYTHON, "-m", "worker"])
    begun = time.monotonic()
    reconnected: float | None = None
    while time.monotonic() - begun < 60:
        with contextlib.suppress(Exception):
            if _workers_connected(stack.url) >= stack.case.consumers:
                reconnected = round(time.monotonic() - begun, 2)
                break
        time.sleep(0.2)  # polling /healthz for the new worker
    return Restart(t_s, victim.process.name, code, round(stop_s, 2), reconnected)


def fit(series: str, samples: list[Sample], warmup_s: float, growth_pct: float) -> Fit | None:
    """The least-squares line through `series` after warm-up, per hour; and the slope with
    the connected clients held fixed. *Grows* is judged on the latter where the samples
    have the clients, else on the plain slope."""
    rows = [
        (s.t_s / 3600.0, float(v), s.connected)
        for s in samples
        if s.t_s >= warmup_s and (v := getattr(s, series)) is not None and math.isfinite(v)
    ]
    if len(rows) < 3:
        return None
    t = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    slope, stderr, residuals = _least_squares(np.column_stack([np.ones_like(t), t]), y)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum(residuals**2)) / total if total > 0 else 0.0
    fixed = _at_fixed_load(series, rows)
    half = rows[len(rows) // 2 :]
    last_half = _at_fixed_load(series, half)
    if last_half[0] is None and len(half) >= 3:
        th = np.array([r[0] for r in half])
        slope_h, err_h, _ = _least_squares(
            np.column_stack([np.ones_like(th), th]), np.array([r[1] for r in half])
        )
        last_half = (slope_h, err_h)
    quarter = max(1, len(rows) // 4)
    mean = float(y.mean())
    # judged at fixed load where the load is known: descriptors and tasks follow the clients
    judged, judged_err = (fixed[0], fixed[1]) if fixed[0] is not None else (slope, stderr)
    assert judged_err is not None
    grows = bool(judged > 2 * judged_err and mean != 0 and judged / abs(mean) * 100 > growth_pct)
    return Fit(
        series=series,
        unit=SERIES[series][0],
        n=len(rows),
        mean=mean,
        slope_per_h=slope,
        stderr_per_h=stderr,
        r2=r2,
        first_quarter_median=float(statistics.median(y[:quarter])),
        last_quarter_median=float(statistics.median(y[-quarter:])),
        grows=grows,
        slope_per_h_fixed_load=fixed[0],
        stderr_per_h_fixed_load=fixed[1],
        slope_per_h_last_half=last_half[0],
        stderr_per_h_last_half=last_half[1],
    )


def _at_fixed_load(
    series: str, rows: list[tuple[float, float, float | None]]
) -> tuple[float | None, float | None]:
    """The slope per hour and its standard error with the connected clients held fixed
    (least squares on time and clients together); (None, None) where the clients are not
    known or never changed."""
    if series == "connected" or len(rows) <= 3 or any(r[2] is None for r in rows):
        return None, None
    load = np.array([float(r[2]) for r in rows])  # type: ignore[arg-type]
    if float(np.ptp(load)) == 0:
        return None, None
    t = np.array([r[0] for r in rows])
    columns = np.column_stack([np.ones_like(t), t, load])
    adjusted, adjusted_err, _ = _least_squares(columns, np.array([r[1] for r in rows]))
    return adjusted, adjusted_err


def fits_for(samples: list[Sample], config: SoakConfig) -> list[Fit]:
    """Every series' fit after the warm-up (those with too few samples left out)."""
    warmup_s = config.warmup_minutes * 60
    return [f for s in SERIES if (f := fit(s, samples, warmup_s, config.growth_pct))]


def _least_squares(x: Any, y: Any) -> tuple[float, float, Any]:
    """(the coefficient of column 1, its standard error, the residuals): ordinary least
    squares by numpy.linalg.lstsq, the standard error from the residuals' variance."""
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ coefficients
    dof = len(y) - x.shape[1]
    variance = float(np.sum(residuals**2)) / dof if dof > 0 else math.inf
    try:
        covariance = variance * np.linalg.inv(x.T @ x)
        stderr = math.sqrt(max(0.0, float(covariance[1, 1])))
    except np.linalg.LinAlgError:
        stderr = math.inf
    return float(coefficients[1]), stderr, residuals


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def write_markdown(result: dict[str, Any], out: Path) -> Path:
    config = result["config"]
    fits = [Fit(**f) for f in result["fits"]]
    tallies = result["tallies"]
    samples = result["samples"]
    lines = [
        "# Soak: churn for " + f"{result['meta']['duration_s'] / 60:.1f} minutes",
        "",
        f"`{result['meta']['command']}` on {result['meta']['machine']}, Python "
        f"{result['meta']['python']}, started {result['meta']['started']}.",
        "",
        f"One server, two worker processes, the fast SQS back end (bench/fakesqs.py). Up to "
        f"{config['clients']} python-socketio clients, about {config['connects_per_s']:g} "
        f"connects/s (mean life {config['clients'] / config['connects_per_s']:.0f} s), each in "
        f"{config['rooms_per_client']} of {config['rooms']} rooms and switching one halfway; "
        f"{config['resume_share'] * 100:.0f} % come back 1-5 s later and resume. "
        f"{config['broadcast_per_s']:g} room-less and {config['room_per_s']:g} room events/s. "
        f"A worker restarted (SIGTERM, then a new one) every {config['restart_every_s']:g} s. "
        f"Sampled every {config['sample_s']:g} s; slopes fitted after a "
        f"{config['warmup_minutes']:g}-minute warm-up.",
        "",
        "## Slopes after warm-up",
        "",
        "Least squares (numpy.polyfit), per hour; ± is one standard error from the residuals "
        "(optimistic: the samples are autocorrelated). *Grows* means a slope (at fixed load "
        "where known) above zero by "
        f"more than two standard errors and more than {config['growth_pct']:g} % of the mean "
        "per hour. The quarter medians are the first and last quarter of the samples after "
        "warm-up. *At fixed load* is the slope with the connected clients held fixed (least "
        "squares on time and clients together): the churn holds the load steady only on "
        "average, and descriptors and tasks follow the clients one for one. *Last half* is "
        "that slope (at fixed load where known) over the second half of the samples after "
        "warm-up alone: a high-water mark levels off, a leak keeps its slope.",
        "",
        "| series | mean | slope per hour | % of mean per hour | r² | first → last quarter "
        "(median) | at fixed load, per hour | last half, per hour | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in fits:
        pct = f.slope_per_h / abs(f.mean) * 100 if f.mean else math.nan
        lines.append(
            f"| {SERIES[f.series][1]} | {_fmt(f.mean)} {f.unit} | "
            f"{f.slope_per_h:+.3g} ± {f.stderr_per_h:.2g} {f.unit}/h | {pct:+.1f} % | "
            f"{f.r2:.2f} | {_fmt(f.first_quarter_median)} → {_fmt(f.last_quarter_median)} | "
            + (
                f"{f.slope_per_h_fixed_load:+.3g} ± {f.stderr_per_h_fixed_load:.2g} | "
                if f.slope_per_h_fixed_load is not None and f.stderr_per_h_fixed_load is not None
                else "— | "
            )
            + (
                f"{f.slope_per_h_last_half:+.3g} ± {f.stderr_per_h_last_half:.2g} | "
                if f.slope_per_h_last_half is not None and f.stderr_per_h_last_half is not None
                else "— | "
            )
            + ("**grows**" if f.grows else "flat")
            + " |"
        )
    growing = [f.series for f in fits if f.grows and f.series in RESOURCES]
    lines += [
        "",
        "Leak verdict: "
        + (
            "**"
            + ", ".join(SERIES[s][1] for s in growing)
            + " grow(s)** over this run: the plot shows whether in steps with the load's "
            "peaks (a high-water mark) or steadily (a leak); a longer run tells them apart."
            if growing
            else "nothing grows: resident memory, file descriptors, asyncio tasks and "
            "GC-tracked objects are flat after warm-up."
        ),
        "",
        "## What the churn did",
        "",
        f"- {tallies['connects']:,} connects ({tallies['connect_errors']} failed), "
        f"{tallies['disconnects']:,} disconnects, {tallies['joins']:,} joins "
        f"({tallies['joins_refused']} refused), {tallies['leaves']:,} leaves",
        f"- {tallies['resumes']:,} resumes: {tallies['resumes_recovered']:,} streams recovered, "
        f"{tallies['resumes_not_recovered']:,} not"
        + (
            " ("
            + ", ".join(f"{n} x {r!r}" for r, n in tallies["not_recovered_reasons"].items())
            + ")"
            if tallies["not_recovered_reasons"]
            else ""
        ),
        f"- {tallies['sent']:,} events sent ({tallies['send_errors']} failed sends); clients "
        f"received {tallies['live_events']:,} live and {tallies['replayed_events']:,} replayed "
        f"(or joined-state) events, {tallies['duplicates']:,} repeats dropped by id",
        f"- {len(result['restarts'])} worker restarts: stop took "
        + (
            f"{min(r['stop_s'] for r in result['restarts']):.2f}-"
            f"{max(r['stop_s'] for r in result['restarts']):.2f} s, exit codes "
            f"{sorted({r['exit_code'] for r in result['restarts']}, key=str)}, the new worker "
            "connected within "
            f"{max((r['reconnected_s'] or math.inf) for r in result['restarts']):.2f} s"
            if result["restarts"]
            else "none"
        ),
        f"- {len(samples)} samples; server RSS {samples[0]['server_rss_mb']} MB at the start, "
        f"{samples[-1]['server_rss_mb']} MB at the end",
    ]
    idle = result.get("idle_after")
    if idle:
        first = samples[0]
        lines += [
            "",
            f"## Idle before and {result['config']['idle_s']:g} s after the churn",
            "",
            "Every client gone and nothing sent: what the server holds with no load, at the "
            "start and after the run (the replay history still holds the last "
            "`REPLAY_WINDOW_S` of events, and memory Python freed is not always given back "
            "to the system).",
            "",
            "| | resident memory (MB) | open fds | asyncio tasks | GC-tracked objects |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in (("before", first), ("after", idle)):
            lines.append(
                f"| {name} | {row['server_rss_mb']} | {row['server_fds']} | "
                f"{row['asyncio_tasks']} | {row['gc_objects']} |"
            )
    if result.get("heapwatch"):
        lines += heap_lines(result["heapwatch"], config)
    if tallies["errors"]:
        lines += ["", "First errors:", ""] + [f"- `{e}`" for e in tallies["errors"][:10]]
    for note in result.get("notes", []):
        lines += ["", note]
    lines += ["", "![soak](soak.png)", ""]
    path = out / "soak.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def heap_lines(heap: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The `--heapwatch`/`--tracemalloc` section: the snapshots, then each comparison's top
    growers (tracebacks with tracemalloc, GC-tracked types always)."""
    tracing = bool(config.get("tracemalloc"))
    how = (
        f"tracemalloc on ({config.get('tracemalloc_frames', 10)} frames)"
        if tracing
        else "without tracemalloc"
    )
    lines = [
        "",
        "## What grows inside the server (bench/heapwatch.py)",
        "",
        f"The server ran under bench/heapwatch.py, {how}. At each point below: "
        + (
            "a full collection (garbage not yet collected is not held), "
            if all("garbage_collected" in t for t in heap["snapshots"])
            else "(no collection first: garbage not yet collected is counted too) "
        )
        + ("a tracemalloc snapshot, " if tracing else "")
        + "a count of GC-tracked objects by type, and where the memory is: pymalloc's arenas "
        "(Python objects up to 512 bytes) and the bytes allocated in them, glibc malloc's heap "
        "in use and free but held (larger objects, C libraries). The server stalls meanwhile "
        "(*took*)."
        + (
            " *Traced* is the memory Python allocated and still holds; *tracemalloc's own* is "
            "what tracing it costs (in the RSS too)."
            if tracing
            else ""
        ),
        "",
        "| snapshot | at (min) | RSS (MB) | pymalloc arenas (MB) | pymalloc used (MB) | malloc "
        "used (MB) | malloc free (MB) | "
        + ("traced (MB) | tracemalloc's own (MB) | " if tracing else "")
        + "GC-tracked objects | took (s) |",
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if tracing else "") + "---:|---:|",
    ]
    for t in heap["snapshots"]:
        lines.append(
            f"| {t['label']} | {t['t_s'] / 60:.1f} | {t['rss_mb']} | "
            f"{t.get('pymalloc_arenas_mb', '—')} | {t.get('pymalloc_used_mb', '—')} | "
            f"{t.get('malloc_used_mb', '—')} | {t.get('malloc_free_mb', '—')} | "
            + (
                f"{t.get('traced_mb', '—')} | {t.get('tracemalloc_overhead_mb', '—')} | "
                if tracing
                else ""
            )
            + f"{t['gc_objects']:,} | {t['took_s']} |"
        )
    for c in heap["comparisons"]:
        traced = (
            f": {c['traced_diff_mb']:+.2f} MB traced" if c.get("traced_diff_mb") is not None else ""
        )
        lines += ["", f"### {c['title']}{traced} in {c['minutes']:g} min"]
        if c["growers"]:
            lines += [
                "",
                'Top growers by traceback (tracemalloc `compare_to(..., "traceback")`; frames '
                "innermost first):",
                "",
                "| + KB | now KB | + blocks | traceback |",
                "|---:|---:|---:|---|",
            ]
            for g in c["growers"]:
                frames = " ← ".join(f"`{f}`" for f in g["frames"])
                lines.append(
                    f"| {g['size_diff_kb']:+,.1f} | {g['size_kb']:,.1f} | "
                    f"{g['count_diff']:+,} | {frames} |"
                )
        lines += [
            "",
            "GC-tracked objects by type that grew: "
            + (
                ", ".join(f"`{name}` {old:,} → {new:,}" for name, old, new, _ in c["types"])
                if c["types"]
                else "none"
            )
            + ".",
        ]
    return lines


def write_plot(result: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    warmup_min = result["config"]["warmup_minutes"]
    fits = {f["series"]: f for f in result["fits"]}
    panels = [
        (
            "server resident memory (MB)",
            ["server_rss_mb", "pymalloc_arenas_mb", "malloc_used_mb", "malloc_free_mb"],
        ),
        ("server open file descriptors", ["server_fds"]),
        ("server asyncio tasks", ["asyncio_tasks"]),
        ("server GC-tracked objects", ["gc_objects"]),
        ("end-to-end latency (ms)", ["client_p50_ms", "client_p99_ms", "server_e2e_p99_ms"]),
        (
            "event-loop lag p99 (ms), clients / 10, load x 10",
            ["loop_lag_p99_ms", "connected", "load_1m"],
        ),
    ]
    figure, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    for ax, (title, names) in zip(axes.flat, panels, strict=True):
        for name in names:
            scale = {"connected": 0.1, "load_1m": 10.0}.get(name, 1.0)
            points = [(s["t_s"] / 60, s[name] * scale) for s in samples if s.get(name) is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, ".", markersize=3, label=name)
            if name in fits and name != "connected":
                f = fits[name]
                post = [x for x in xs if x >= warmup_min]
                if post:
                    mid = statistics.mean(x / 60 for x in post)
                    # the fitted line, through the post-warm-up mean at its mean time
                    line = [f["mean"] + f["slope_per_h"] * (x / 60 - mid) for x in post]
                    ax.plot(post, line, "-", linewidth=1.5)
        ax.axvspan(0, warmup_min, color="0.9")
        for restart in result["restarts"]:
            ax.axvline(restart["t_s"] / 60, color="0.7", linewidth=0.6, linestyle=":")
        ax.set_title(title, fontsize=10)
        if len(names) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("minutes (grey: warm-up; dotted: a worker restarted)")
    figure.suptitle(
        f"Soak: {result['config']['clients']} clients churning, "
        f"{result['config']['connects_per_s']:g} connects/s, "
        f"{result['config']['broadcast_per_s'] + result['config']['room_per_s']:g} events/s "
        "(lines: least-squares fit after warm-up)",
        fontsize=11,
    )
    figure.tight_layout()
    path = out / "soak.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def rewrite_report(path: Path) -> int:
    """soak.md and soak.png again from a soak.json (the fits recomputed from its samples)."""
    result = json.loads(path.read_text())
    config = SoakConfig(**{**asdict(SoakConfig()), **result["config"]})
    samples = [Sample(**s) for s in result["samples"]]
    fits = fits_for(samples, config)
    result["config"] = asdict(config)
    result["fits"] = [asdict(f) for f in fits]
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for written in (write_markdown(result, path.parent), write_plot(result, path.parent)):
        print(written)
    return 0


class HeapWatch:
    """The soak's side of bench/heapwatch.py: asks the server for a snapshot (SIGUSR1) and
    waits for its files; afterwards compares them."""

    #: the server holds the GIL while it snapshots: a big heap takes seconds
    TIMEOUT_S = 180.0

    def __init__(self, directory: Path, server: psutil.Process, started: float) -> None:
        self.directory = directory
        self.server = server
        self.started = started
        self.taken: list[dict[str, Any]] = []

    def take(self, label: str) -> None:
        """Blocks until the server has written the snapshot (call it in a thread)."""
        index = len(self.taken)
        snap, info_path = heapwatch.snapshot_paths(self.directory, index)
        t_s = round(time.monotonic() - self.started, 1)
        rss_mb = round(self.server.memory_info().rss / 2**20, 2)
        self.server.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + self.TIMEOUT_S
        while not info_path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no heap snapshot {info_path} after {self.TIMEOUT_S} s")
            time.sleep(0.2)  # polling for the file the server writes last
        info = json.loads(info_path.read_text())
        self.taken.append(
            {"label": label, "index": index, "t_s": t_s, "rss_mb": rss_mb, "snap": str(snap)}
            | {k: v for k, v in info.items() if k != "types"}
        )

    def _by_label(self, label: str) -> dict[str, Any] | None:
        return next((t for t in self.taken if t["label"] == label), None)

    def report(self, keep_snapshots: bool) -> dict[str, Any]:
        """The snapshots' figures and, between pairs of them, the top growers."""
        result: dict[str, Any] = {"snapshots": self.taken, "comparisons": []}
        pairs = [
            ("warm", "end", "end of the warm-up → end of the churn (same load)", 15),
            ("start", "idle", "idle before the churn → idle after it", 10),
        ]
        for old_label, new_label, title, top in pairs:
            old, new = self._by_label(old_label), self._by_label(new_label)
            if old is None or new is None:
                continue
            growers: list[heapwatch.Grower] = []
            total_mb = None
            if Path(old["snap"]).exists() and Path(new["snap"]).exists():
                growers, total_mb = heapwatch.compare(Path(old["snap"]), Path(new["snap"]), top)
            old_types = json.loads(Path(old["snap"]).with_suffix(".json").read_text())["types"]
            new_types = json.loads(Path(new["snap"]).with_suffix(".json").read_text())["types"]
            result["comparisons"].append(
                {
                    "from": old_label,
                    "to": new_label,
                    "title": title,
                    "minutes": round((new["t_s"] - old["t_s"]) / 60, 1),
                    "traced_diff_mb": total_mb,
                    "growers": [asdict(g) for g in growers],
                    "types": heapwatch.type_growth(old_types, new_types),
                }
            )
        if not keep_snapshots:
            for taken in self.taken:
                Path(taken["snap"]).unlink(missing_ok=True)
        return result


async def soak(
    stack: Stack, config: SoakConfig, console: Console, heap_dir: Path | None = None
) -> tuple[list[Sample], list[Restart], Tallies, Sample, HeapWatch | None]:
    """The churn, the producer and the restarts for `config.minutes`, sampled; then, every
    client gone and nothing sent for `config.idle_s`, one more sample (the idle one)."""
    tallies = Tallies()
    server = stack.by_role()["server"][0]
    started = time.monotonic()
    duration_s = config.minutes * 60
    churn = Churn(stack.url, config, tallies)
    producer = Producer(stack, config, tallies)
    sampler = Sampler(stack, server, started, heap_dir)
    samples: list[Sample] = []
    restarts: list[Restart] = []
    watch = HeapWatch(heap_dir, server, started) if heap_dir is not None else None
    # (label, due after this many seconds): idle before, end of warm-up, halfway after it
    snapshots_due: list[tuple[str, float]] = []
    if watch is not None:
        await asyncio.to_thread(watch.take, "start")
        warm_s = config.warmup_minutes * 60
        snapshots_due = [("warm", warm_s), ("mid", (warm_s + duration_s) / 2)]
    churning = asyncio.create_task(churn.run(), name="churn")
    producer.thread.start()
    next_sample = started
    next_restart = started + config.restart_every_s
    with Progress(
        TextColumn("soak"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task("soak", total=duration_s)
        while True:
            now = time.monotonic()
            if now >= next_sample:
                sample = await asyncio.to_thread(sampler.take, churn, tallies)
                samples.append(sample)
                next_sample += config.sample_s
                progress.console.print(
                    f"  {sample.t_s:>7.0f} s  RSS {sample.server_rss_mb} MB  fds "
                    f"{sample.server_fds}  tasks {sample.asyncio_tasks}  gc {sample.gc_objects}  "
                    f"clients {sample.connected}  lag p99 {sample.loop_lag_p99_ms} ms  "
                    f"e2e p50/p99 {sample.client_p50_ms}/{sample.client_p99_ms} ms  "
                    f"connects {tallies.connects} resumes {tallies.resumes}"
                )
            if now - started >= duration_s:
                break
            if watch is not None and snapshots_due and now - started >= snapshots_due[0][1]:
                label, _ = snapshots_due.pop(0)
                await asyncio.to_thread(watch.take, label)
                progress.console.print(f"  heap snapshot {label!r}: {watch.taken[-1]['took_s']} s")
            if now >= next_restart:
                restart = await asyncio.to_thread(restart_worker, stack, len(restarts), started)
                restarts.append(restart)
                next_restart += config.restart_every_s
                progress.console.print(
                    f"  {restart.t_s:>7.0f} s  restarted {restart.worker}: exit "
                    f"{restart.exit_code} after {restart.stop_s} s, new worker connected in "
                    f"{restart.reconnected_s} s"
                )
            progress.update(bar, completed=min(duration_s, now - started))
            await asyncio.sleep(max(0.05, min(next_sample, next_restart) - time.monotonic()))
        progress.update(bar, completed=duration_s)
    if watch is not None:
        await asyncio.to_thread(watch.take, "end")
    producer.stop.set()
    await churn.stop()
    await asyncio.to_thread(producer.thread.join, 30)
    churning.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await churning
    console.print(f"  every client gone; idle for {config.idle_s:g} s")
    await asyncio.sleep(config.idle_s)  # the idle phase is a duration, not a wait for a signal
    idle = await asyncio.to_thread(sampler.take, churn, tallies)
    if watch is not None:
        await asyncio.to_thread(watch.take, "idle")
    return samples, restarts, tallies, idle, watch


def main(argv: list[str] | None = None) -> int:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--minutes", type=float, default=defaults.minutes, help="how long (default %(default)s)")
    add(
        "--warmup-minutes",
        type=float,
        default=defaults.warmup_minutes,
        help="left out of the fits (default %(default)s)",
    )
    add(
        "--clients",
        type=int,
        default=defaults.clients,
        help="at most this many connected at once (default %(default)s)",
    )
    add(
        "--connects-per-s",
        type=float,
        default=defaults.connects_per_s,
        help="new or resuming connects a second (default %(default)s)",
    )
    add("--rooms", type=int, default=defaults.rooms, help="rooms (default %(default)s)")
    add(
        "--rooms-per-client",
        type=int,
        default=defaults.rooms_per_client,
        help="rooms each client joins (default %(default)s)",
    )
    add(
        "--broadcast-per-s",
        type=float,
        default=defaults.broadcast_per_s,
        help="room-less events a second (default %(default)s)",
    )
    add(
        "--room-per-s",
        type=float,
        default=defaults.room_per_s,
        help="events to a random room a second (default %(default)s)",
    )
    add(
        "--resume-share",
        type=float,
        default=defaults.resume_share,
        help="share of departing clients that come back to resume (default %(default)s)",
    )
    add(
        "--restart-every-s",
        type=float,
        default=defaults.restart_every_s,
        help="restart one worker this often (default %(default)s)",
    )
    add(
        "--sample-s",
        type=float,
        default=defaults.sample_s,
        help="sample the server this often (default %(default)s)",
    )
    add(
        "--growth-pct",
        type=float,
        default=defaults.growth_pct,
        help="a significant slope above this %% of the mean per hour grows (default %(default)s)",
    )
    add(
        "--idle-s",
        type=float,
        default=defaults.idle_s,
        help="after the churn, idle this long and sample once more (default %(default)s)",
    )
    add(
        "--tracemalloc",
        action="store_true",
        help="run the server through bench/heapwatch.py (tracemalloc on) and report the top "
        "growers between heap snapshots: idle before, end of warm-up, halfway, end, idle after",
    )
    add(
        "--heapwatch",
        action="store_true",
        help="run the server through bench/heapwatch.py without tracemalloc: where its memory "
        "is (pymalloc, malloc) every sample; live GC-tracked objects by type at idle before, "
        "end of warm-up, halfway, end, idle after",
    )
    add(
        "--tracemalloc-frames",
        type=int,
        default=defaults.tracemalloc_frames,
        help="frames kept per allocation (default %(default)s)",
    )
    add(
        "--keep-snapshots",
        action="store_true",
        help="keep the tracemalloc snapshots (OUT/heapwatch/*.snap, tens of MB each)",
    )
    add("--out", type=Path, help="output folder (default bench/out/soak-<time>)")
    add(
        "--from-json",
        type=Path,
        metavar="SOAK_JSON",
        help="run nothing: write soak.md and soak.png again from this soak.json, beside it",
    )
    args = parser.parse_args(argv)
    if args.from_json is not None:
        return rewrite_report(args.from_json)
    config = SoakConfig(
        **{k: v for k, v in vars(args).items() if k not in ("out", "from_json", "keep_snapshots")}
    )
    if config.rooms_per_client >= config.rooms:
        parser.error("--rooms-per-client must be below --rooms (a client switches rooms)")
    started_at = datetime.now(UTC)
    out: Path = args.out or Path("bench/out") / started_at.strftime("soak-%Y%m%d-%H%M%S")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    console.print(f"[bold]soak[/] for {config.minutes:g} min; output in {out}")
    meta = RunMeta.here("python -m bench soak", argv, started_at, backend="fast")
    stack = Stack(Case("soak", "process", 2, config.clients, "fast", [], False), logs)
    heap_dir: Path | None = None
    if config.tracemalloc or config.heapwatch:
        heap_dir = out / "heapwatch"
        stack.server_module = "bench.heapwatch"
        stack.server_env = {
            heapwatch.DIR_ENV: str(heap_dir.resolve()),
            heapwatch.FRAMES_ENV: str(config.tracemalloc_frames),
            heapwatch.TRACEMALLOC_ENV: "1" if config.tracemalloc else "0",
        }
    t0 = time.monotonic()
    try:
        stack.start()
        samples, restarts, tallies, idle, watch = asyncio.run(
            soak(stack, config, console, heap_dir)
        )
        stopped = {r.worker for r in restarts}
        exited = [
            p.process.name
            for p in stack.procs
            if not p.process.alive() and p.process.name not in stopped
        ]
    finally:
        stack.stop()
    meta = meta.model_copy(update={"duration_s": round(time.monotonic() - t0, 1)})
    fits = fits_for(samples, config)
    notes = [f"Processes that exited during the run: {exited}."] if exited else []
    result: dict[str, Any] = {
        "meta": meta.model_dump(),
        "config": asdict(config),
        "fits": [asdict(f) for f in fits],
        "tallies": asdict(tallies),
        "restarts": [asdict(r) for r in restarts],
        "samples": [asdict(s) for s in samples],
        "idle_after": asdict(idle),
        "notes": notes,
    }
    if watch is not None:
        console.print("comparing the heap snapshots")
        result["heapwatch"] = watch.report(args.keep_snapshots)
    (out / "soak.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    written = [out / "soak.json", write_markdown(result, out), write_plot(result, out)]
    for f in fits:
        console.print(
            f"  {SERIES[f.series][1]:52} {f.slope_per_h:+10.3g} ± {f.stderr_per_h:.2g} "
            f"{f.unit}/h  " + ("[red]grows[/]" if f.grows else "flat")
        )
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
