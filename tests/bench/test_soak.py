"""`python -m bench soak` with tiny rates for about 20 seconds: the harness churns, resumes,
restarts a worker, samples the server's gauges and writes its report (no speed is asserted:
the figures are measured in bench/, never in a test)."""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import subprocess
import threading
import tracemalloc
from pathlib import Path

import pytest

from bench import heapwatch
from bench.soak import RESOURCES, Sample, fit
from server.metrics import GcObjectCount
from tests.processes import PYTHON, ROOT


@pytest.mark.timeout(240)
def test_short_soak_churns_restarts_a_worker_and_reports_every_resource_slope(
    tmp_path: Path,
) -> None:
    # Given a soak of 20 s: 6 clients living about 3 s each, half of them coming back to
    # resume, a worker restarted every 6 s, a sample every 2 s, the server run through
    # bench/heapwatch.py
    result = subprocess.run(
        [PYTHON, "-m", "bench", "soak", "--minutes", "0.34", "--warmup-minutes", "0.05",
         "--clients", "6", "--connects-per-s", "2", "--rooms", "3", "--rooms-per-client", "1",
         "--broadcast-per-s", "2", "--room-per-s", "3", "--resume-share", "0.5",
         "--restart-every-s", "6", "--sample-s", "2", "--idle-s", "1", "--heapwatch",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=220,
    )  # fmt: skip

    # Then it ran to the end and wrote its three files
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    assert (tmp_path / "soak.png").stat().st_size > 0
    markdown = (tmp_path / "soak.md").read_text()
    # the churn happened: connects, resumes answered, room changes, live events, restarts
    tallies = report["tallies"]
    assert tallies["connects"] > 0 and tallies["leaves"] > 0
    assert tallies["resumes"] > 0 and tallies["resumes_recovered"] > 0
    assert tallies["sent"] > 0 and tallies["live_events"] > 0
    assert report["restarts"], "no worker was restarted"
    assert all(r["reconnected_s"] is not None for r in report["restarts"])
    assert report["notes"] == []  # no process of the stack exited on its own
    # every sample after the first has the server's four resource figures
    samples = report["samples"]
    assert len(samples) >= 5
    for sample in samples[1:]:
        for series in RESOURCES:
            assert sample[series] is not None, (series, sample)
        assert sample["asyncio_tasks"] > 0 and sample["gc_objects"] > 0
    # and the report gives each a slope
    fitted = {f["series"] for f in report["fits"]}
    assert set(RESOURCES) <= fitted
    assert "slope per hour" in markdown
    for name in ("resident memory", "file descriptors", "asyncio tasks", "GC-tracked objects"):
        assert name in markdown
    # with a sample once every client had gone, beside the first
    assert report["idle_after"]["asyncio_tasks"] is not None
    assert "## Idle before and 1 s after the churn" in markdown
    # heapwatch: a snapshot at each point, where the memory is in the samples, and the two
    # comparisons (same load; idle before and after) with the types that grew
    heap = report["heapwatch"]
    assert [t["label"] for t in heap["snapshots"]] == ["start", "warm", "mid", "end", "idle"]
    assert all(t["gc_objects"] > 0 and t["pymalloc_arenas_mb"] > 0 for t in heap["snapshots"])
    assert [(c["from"], c["to"]) for c in heap["comparisons"]] == [
        ("warm", "end"),
        ("start", "idle"),
    ]
    assert any(c["types"] for c in heap["comparisons"])
    assert any(s["pymalloc_arenas_mb"] and s["malloc_used_mb"] for s in samples)
    assert "## What grows inside the server (bench/heapwatch.py)" in markdown

    # When the report is written again from the JSON alone
    (tmp_path / "soak.md").unlink()
    again = subprocess.run(
        [PYTHON, "-m", "bench", "soak", "--from-json", str(tmp_path / "soak.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    # Then it is the same report
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "soak.md").read_text() == markdown


def test_fit_calls_a_steady_rise_growth_and_noise_around_a_level_flat() -> None:
    rng = random.Random(7)
    times = range(0, 1800, 10)  # half an hour, a sample every 10 s
    rising = [Sample(t_s=t, server_rss_mb=100 + t / 60 + rng.gauss(0, 0.5)) for t in times]
    level = [Sample(t_s=t, server_rss_mb=100 + rng.gauss(0, 0.5)) for t in times]

    grows = fit("server_rss_mb", rising, warmup_s=300, growth_pct=5)
    flat = fit("server_rss_mb", level, warmup_s=300, growth_pct=5)

    assert grows is not None and flat is not None
    assert grows.n == flat.n == 150  # the warm-up's 30 samples left out
    assert grows.grows and 55 < grows.slope_per_h < 65  # 1 MB a minute
    assert not flat.grows and abs(flat.slope_per_h) < 5


def test_gc_object_count_is_counted_again_only_once_it_is_old_enough() -> None:
    now = [0.0]
    count = GcObjectCount(max_age_s=10, clock=lambda: now[0])
    # No collection in between: what earlier tests left would be freed and muddle the count
    gc.collect()
    gc.disable()
    try:
        first = count()
        held = [[n] for n in range(50_000)]  # tracked objects made after the first count

        now[0] = 9.9
        assert count() == first  # within max_age_s: the cached count
        now[0] = 10.0
        # counted again: the new objects are in it
        assert count() >= first + 0.9 * len(held)  # (other threads may free a few)
    finally:
        gc.enable()


class _Held:
    """What the heapwatch tests allocate and hold: its type and its traceback are known."""

    def __init__(self) -> None:
        self.data = bytearray(1024)  # the line the top grower's innermost frame names


def _allocate(n: int) -> list[_Held]:
    return [_Held() for _ in range(n)]


def test_heapwatch_compare_names_the_traceback_and_the_type_that_grew(tmp_path: Path) -> None:
    # Given two snapshots and type counts, 2,000 objects of 1 KB allocated in between
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start(5)
    try:
        gc.collect()
        before_types = heapwatch.type_counts()
        tracemalloc.take_snapshot().dump(str(tmp_path / "before.snap"))
        held = _allocate(2000)
        tracemalloc.take_snapshot().dump(str(tmp_path / "after.snap"))
        after_types = heapwatch.type_counts()
    finally:
        if started_here:
            tracemalloc.stop()

    # When they are compared
    growers, total_mb = heapwatch.compare(tmp_path / "before.snap", tmp_path / "after.snap", 5)
    types = heapwatch.type_growth(before_types, after_types)

    # Then the top grower is the allocating line, called from _allocate, with the 2 MB and
    # the 2,000 blocks it holds
    assert len(held) == 2000
    top = growers[0]
    assert top.frames[0].endswith(f"test_soak.py:{_Held.__init__.__code__.co_firstlineno + 1}")
    assert f"tests/bench/test_soak.py:{_allocate.__code__.co_firstlineno + 1}" in top.frames
    assert top.size_diff_kb >= 2000 and top.count_diff >= 2000
    assert total_mb >= 2.0
    # and the type that grew is counted by its module and name, 2,000 more
    grown = {name: diff for name, _, _, diff in types}
    assert grown[f"{__name__}._Held"] == 2000


def test_heapwatch_writes_type_counts_and_where_the_memory_is_on_sigusr1(
    tmp_path: Path,
) -> None:
    # Given a watcher without tracemalloc, asked for a snapshot by SIGUSR1 as the soak asks
    written = threading.Event()

    class Signalled(heapwatch.Watcher):
        def write(self) -> None:
            super().write()
            written.set()

    watcher = Signalled(tmp_path, tracing=False)
    watcher.start(every_s=None)
    previous = signal.signal(signal.SIGUSR1, watcher.request)
    try:
        # When the signal comes
        os.kill(os.getpid(), signal.SIGUSR1)
        assert written.wait(30), "no snapshot written"
    finally:
        signal.signal(signal.SIGUSR1, previous)

    # Then snapshot 000's counts are written, with no tracemalloc snapshot
    snap, counts = heapwatch.snapshot_paths(tmp_path, 0)
    assert counts.exists() and not snap.exists()
    info = json.loads(counts.read_text())
    assert info["types"]["builtins.dict"] > 0
    assert info["gc_objects"] == sum(info["types"].values())
    # and where the memory is: pymalloc's arenas (read from its stats on fd 2) and malloc's
    assert 0 < info["pymalloc_used_mb"] <= info["pymalloc_arenas_mb"]
    assert info["malloc_used_mb"] > 0 and info["rss_mb"] > 0
