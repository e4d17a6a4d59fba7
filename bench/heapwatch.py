"""`python -m bench.heapwatch`: `python -m server` with tracemalloc on, for the soak's
`--tracemalloc` (bench only; the server's code is not changed).

Starts tracemalloc with HEAPWATCH_FRAMES frames (default 10; HEAPWATCH_TRACEMALLOC=0: no
tracemalloc), then runs the server's own entry point as `python -m server` does. Each SIGUSR1
(and every HEAPWATCH_EVERY_S seconds, when set) writes, into HEAPWATCH_DIR:

- `snapshot-NNN.snap`: a tracemalloc snapshot (`Snapshot.dump`; load it with
  `tracemalloc.Snapshot.load`), when tracemalloc is on;
- `snapshot-NNN.json`: the live GC-tracked objects (after a full collection) counted by
  type (`module.qualname`), the traced memory and the time; written last (by a rename), so
  that its presence says the snapshot is complete.

Every HEAPWATCH_BREAKDOWN_S seconds (default 10; 0: never) it appends to `breakdown.jsonl`
where the process's memory is, cheaply (no collection, no tracemalloc): pymalloc's arenas and
the bytes in their allocated blocks (`sys._debugmallocstats`, read through a pipe on fd 2
for the moment it writes) and glibc malloc's heap in use and free (`mallinfo2`), beside the
RSS. Python objects live in pymalloc's arenas (up to 512 bytes) or in malloc's heap (larger
ones and C libraries' own memory): which of them holds the RSS says what grows.

NNN counts from 000 in the order of the requests. The signal handler only sets an event: a
daemon thread takes the snapshot (it holds the GIL, so the event loop stalls meanwhile: about
a second per 100,000 traced blocks).

`compare()` is the soak's side: the top growers between two snapshots.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIR_ENV = "HEAPWATCH_DIR"
TRACEMALLOC_ENV = "HEAPWATCH_TRACEMALLOC"
BREAKDOWN_ENV = "HEAPWATCH_BREAKDOWN_S"
BREAKDOWN_FILE = "breakdown.jsonl"
FRAMES_ENV = "HEAPWATCH_FRAMES"
EVERY_ENV = "HEAPWATCH_EVERY_S"
DEFAULT_FRAMES = 10
#: Allocations of no interest to a leak hunt: tracemalloc's own, the import machinery's.
IGNORED = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>")


def snapshot_paths(directory: Path, index: int) -> tuple[Path, Path]:
    """(the tracemalloc snapshot, the type counts) of the `index`-th request."""
    stem = directory / f"snapshot-{index:03d}"
    return stem.with_suffix(".snap"), stem.with_suffix(".json")


def type_counts() -> dict[str, int]:
    """Live GC-tracked objects by type, the start-up's included: the server sets aside what
    survives a pass (server/collector.py), so it is put back for the count, then aside again."""
    gc.unfreeze()
    try:
        counts = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
    finally:
        gc.freeze()
    return dict(counts)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo2() -> dict[str, float]:
    """glibc's heap: in use, free (held, not given back), and mmapped blocks, in MB."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):  # not glibc
        return {}
    mb = 2**20
    return {
        "malloc_used_mb": round(info.uordblks / mb, 2),
        "malloc_free_mb": round(info.fordblks / mb, 2),
        "malloc_mmapped_mb": round(info.hblkhd / mb, 2),
    }


def _pymalloc() -> dict[str, float]:
    """pymalloc's arenas (what they hold of the RSS) and the bytes in allocated blocks, MB,
    from `sys._debugmallocstats`, which writes to the C stderr: fd 2 goes to a pipe for the
    moment it writes (the GIL is held throughout: no Python thread writes meanwhile)."""
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    try:
        sys.stderr.flush()
        os.dup2(write_end, 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
        os.close(write_end)
        write_end = -1
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(saved)
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    found: dict[str, float] = {}
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        name, _, value = line.partition("=")
        number = value.strip().replace(",", "")
        if not number.isdigit():
            continue
        if name.strip() == "# arenas allocated current":
            found["pymalloc_arenas"] = int(number)
        elif name.strip() == "# arenas highwater mark":
            found["pymalloc_arenas_highwater"] = int(number)
        elif name.strip() == "# bytes in allocated blocks":
            found["pymalloc_used_mb"] = round(int(number) / 2**20, 2)
        elif "bytes/arena" in name and "pymalloc_arenas_mb" not in found:
            found["pymalloc_arenas_mb"] = round(int(number) / 2**20, 2)
    return found


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 2)


def breakdown() -> dict[str, float]:
    """Where this process's memory is, now (see the module's docstring)."""
    return {"wall_time": time.time(), "rss_mb": _rss_mb()} | _pymalloc() | _mallinfo2()


class Watcher:
    """Writes a snapshot each time `request()` is called (from a signal handler or a timer)."""

    def __init__(self, directory: Path, tracing: bool = True) -> None:
        self.directory = directory
        self.tracing = tracing
        self.index = 0
        self._wanted = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heapwatch", daemon=True)

    def start(self, every_s: float | None, breakdown_s: float = 0) -> None:
        self.every_s = every_s
        self._thread.start()
        if breakdown_s > 0:
            thread = threading.Thread(
                target=self._breakdowns, args=(breakdown_s,), name="heapwatch-mem", daemon=True
            )
            thread.start()

    def _breakdowns(self, every_s: float) -> None:
        path = self.directory / BREAKDOWN_FILE
        while True:
            try:
                line = json.dumps(breakdown())
                with path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
            except Exception as exc:  # a failed reading must not stop the server
                print(f"heapwatch: breakdown failed: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(every_s)  # a period, not a wait for something

    def request(self, *_: Any) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait(self.every_s)
            self._wanted.clear()
            try:
                self.write()
            except Exception as exc:  # a failed snapshot must not stop the server
                print(f"heapwatch: snapshot failed: {exc!r}", file=sys.stderr, flush=True)

    def write(self) -> None:
        snap_path, json_path = snapshot_paths(self.directory, self.index)
        self.index += 1
        began = time.monotonic()
        # Garbage waiting for the collector is not held: counted, it would only add the
        # collector's rhythm (a sawtooth of tens of thousands of objects) to every figure.
        # What the server set aside is put back first (server/collector.py).
        gc.unfreeze()
        collected = gc.collect()
        memory = breakdown()
        info: dict[str, Any] = {}
        if self.tracing:
            snapshot = tracemalloc.take_snapshot()
            snapshot.dump(str(snap_path))
            current, peak = tracemalloc.get_traced_memory()
            info |= {
                "traced_mb": round(current / 2**20, 3),
                "traced_peak_mb": round(peak / 2**20, 3),
                "tracemalloc_overhead_mb": round(tracemalloc.get_tracemalloc_memory() / 2**20, 3),
                "traces": len(snapshot.traces),
            }
        counts = type_counts()
        info |= memory | {
            "took_s": round(time.monotonic() - began, 3),
            "gc_objects": sum(counts.values()),
            "garbage_collected": collected,
            "types": counts,
        }
        partial = json_path.with_suffix(".json.partial")
        partial.write_text(json.dumps(info), encoding="utf-8")
        partial.rename(json_path)


@dataclass
class Grower:
    """One traceback whose memory grew between two snapshots."""

    size_diff_kb: float
    size_kb: float
    count_diff: int
    count: int
    #: innermost frame first, as `file:line`
    frames: list[str]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    with contextlib.suppress(ValueError):
        return str(Path(filename).relative_to(Path.cwd()))
    return filename


def compare(old_path: Path, new_path: Path, top: int = 15) -> tuple[list[Grower], float]:
    """The `top` tracebacks that grew most from snapshot `old_path` to `new_path`, and the
    whole traced difference in MB."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)] + [
        tracemalloc.Filter(False, name) for name in IGNORED
    ]
    old = tracemalloc.Snapshot.load(str(old_path)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(new_path)).filter_traces(ignore)
    stats = new.compare_to(old, "traceback")
    total_mb = sum(s.size_diff for s in stats) / 2**20
    growers = [
        Grower(
            size_diff_kb=round(s.size_diff / 1024, 1),
            size_kb=round(s.size / 1024, 1),
            count_diff=s.count_diff,
            count=s.count,
            frames=[f"{_short(f.filename)}:{f.lineno}" for f in reversed(s.traceback)],
        )
        for s in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]
        if s.size_diff > 0
    ]
    return growers, round(total_mb, 3)


def type_growth(old: dict[str, int], new: dict[str, int], top: int = 20) -> list[list[Any]]:
    """[type, old count, new count, difference] for the `top` types that grew most."""
    rows = [[name, old.get(name, 0), n, n - old.get(name, 0)] for name, n in new.items()]
    rows = [r for r in rows if r[3] > 0]
    rows.sort(key=lambda r: r[3], reverse=True)
    return rows[:top]


def main() -> int:
    directory = Path(os.environ[DIR_ENV])
    directory.mkdir(parents=True, exist_ok=True)
    tracing = os.environ.get(TRACEMALLOC_ENV, "1") != "0"
    if tracing:
        tracemalloc.start(int(os.environ.get(FRAMES_ENV, DEFAULT_FRAMES)))
    every = os.environ.get(EVERY_ENV)
    watcher = Watcher(directory, tracing)
    watcher.start(float(every) if every else None, float(os.environ.get(BREAKDOWN_ENV, "10")))
    signal.signal(signal.SIGUSR1, watcher.request)
    from server.__main__ import main as server_main

    return server_main()


if __name__ == "__main__":
    sys.exit(main())
