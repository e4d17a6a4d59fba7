"""The benchmark report: Markdown, PNG plots and the terminal summary from typed results."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from bench import plots, report
from bench.analysis import comparison_rate, ratio
from bench.formatting import fmt
from bench.report import write_report
from bench.results import BenchResults, StepResult
from bench.summary import print_summary, summary_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMAND = "python -m bench --quick"
COMMITTED = Path(__file__).resolve().parents[2] / "bench" / "results" / "2-core"


def step(
    rate: float,
    p99: float | None,
    *,
    lag: float | None = 1.0,
    ping: float | None = 2.0,
    saturated: bool = False,
    errors: list[str] | None = None,
    cpu: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One step of a case's ramp; ``None`` leaves a measurement out the way the harness does."""
    return {
        "offered_rate": rate,
        "duration_s": 8.0,
        "sent": int(rate * 8),
        "delivered": int(rate * 8) - (100 if saturated else 0),
        "delivered_rate": rate * (0.8 if saturated else 1.0),
        "latency_ms": None if p99 is None else {"p50": p99 / 2, "p95": p99 * 0.8, "p99": p99},
        "worker_latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
        "loop_lag_ms": None if lag is None else {"p50": lag / 4, "p99": lag, "max": lag * 2},
        "ping_rtt_ms": None if ping is None else {"p50": ping / 2, "p99": ping, "max": ping * 3},
        "cpu_s_per_1000": cpu
        if cpu is not None
        else {"server": 0.9, "workers": 1.2, "sqs": 0.5, "clients": 0.8, "producer": 0.3},
        "peak_rss_mb": {"server": 80.0, "workers": 60.0, "sqs": 40.0, "clients": 90.0},
        "queue_depth_max": 500 if saturated else 3,
        "duplicates": 0,
        "errors": errors or [],
        "saturated": saturated,
    }


def case(
    regime: str,
    mode: str,
    consumers: int,
    label: str,
    steps: list[dict[str, Any]],
    *,
    clients: int = 5,
    max_rate: float | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "regime": regime,
        "mode": mode,
        "consumers": consumers,
        "clients": clients,
        "backend": "fast",
        "label": label,
        "steps": steps,
        "notes": notes or [],
    }
    if max_rate is not None:  # else the report works it out from the steps
        result["max_sustained_rate"] = max_rate
    return result


def ramp(*steps: dict[str, Any]) -> list[StepResult]:
    return [StepResult.model_validate(s) for s in steps]


def make_results() -> BenchResults:
    """Two regimes; in handoff every case sustains 1000 msg/s, in fanout none sustains any."""
    handoff = [
        case(
            "handoff",
            "process",
            1,
            "process x1",
            [step(500, 10.0, lag=1.0), step(1000, 20.0, lag=2.0), step(2000, 90.0, saturated=True)],
            max_rate=1000,
        ),
        case(
            "handoff",
            "process",
            2,
            "process x2",
            [step(500, 8.0), step(1000, 10.0, lag=4.0), step(2000, 15.0)],
            max_rate=2000,
        ),
        case(
            "handoff",
            "thread",
            1,
            "thread x1",
            [step(500, 30.0), step(1000, 50.0, lag=40.0), step(2000, 400.0, saturated=True)],
            max_rate=1000,
        ),
        case(
            "handoff",
            "thread-direct",
            1,
            "thread-direct",
            # No ping probe, no separate worker process, and no step at 2000 msg/s.
            [
                step(500, 12.0, ping=None, cpu={"server": 2.0, "clients": 0.8}),
                step(1000, 25.0, ping=None, cpu={"server": 2.1, "clients": 0.8}),
            ],
        ),
        case(
            "handoff",
            "naive",
            1,
            "naive",
            [
                step(500, 40.0, lag=None, errors=["RuntimeWarning: coroutine never awaited"]),
                step(1000, None, lag=None, errors=["RuntimeWarning: coroutine never awaited"]),
                step(2000, None, lag=None, saturated=True, errors=["emit | on the wrong loop"]),
            ],
            max_rate=1000,
            notes=["asyncio.run got a function; fixed by hand to measure the rest"],
        ),
        case(
            "handoff",
            "aiobotocore",
            1,
            "aiobotocore",
            [step(500, 9.0), step(1000, 18.0, lag=3.0)],
            max_rate=1000,
        ),
        case(
            "handoff",
            "redis-manager",
            3,
            "redis-manager x3",
            [step(500, 11.0), step(1000, 16.0, lag=1.5), step(2000, 30.0)],
            max_rate=2000,
        ),
    ]
    fanout = [
        case(
            "fanout",
            "process",
            1,
            "process x1",
            [step(100, 60.0, saturated=True), step(200, 120.0, saturated=True)],
            clients=1000,
            max_rate=0,
        ),
        case(
            "fanout",
            "thread",
            1,
            "thread x1",
            [step(100, 90.0, saturated=True), step(200, 300.0, saturated=True)],
            clients=1000,
            max_rate=0,
        ),
        case(
            "fanout",
            "naive",
            1,
            "naive",
            [step(100, None, lag=None, saturated=True, errors=["Timeout"])],
            clients=1000,
            max_rate=0,
        ),
    ]
    return BenchResults.model_validate(
        {
            "meta": {
                "started": "2026-11-25T03:40:00Z",
                "command": COMMAND,
                "cpus": 2,
                "machine": "Linux x86_64, 2 cores, 24 GiB",
                "python": "3.11.7",
                "quick": True,
                "backend": "fast",
                "backend_delay_ms": 0,
                "duration_s": 612.3,
            },
            "cases": handoff + fanout,
        }
    )


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    start = markdown.index(heading + "\n")
    level = heading.split(" ", 1)[0]
    rest = markdown[start + len(heading) :]
    ends = [rest.find("\n" + "#" * n + " ") for n in range(1, len(level) + 1)]
    ends = [e for e in ends if e >= 0]
    return rest[: min(ends)] if ends else rest


def table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in ``text``, one dict (header -> cell) per row."""
    lines = [line for line in text.splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split(" | ")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report")
    return out, write_report(make_results(), out)


@pytest.fixture(scope="module")
def markdown(written: tuple[Path, list[Path]]) -> str:
    return (written[0] / "report.md").read_text(encoding="utf-8")


def test_writes_report_and_valid_pngs(written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    names = {p.name for p in paths}
    for regime in ("handoff", "fanout"):
        for stem in (
            "latency_p99_vs_rate",
            "loop_lag_p99_vs_rate",
            "ping_rtt_p99_vs_rate",
            "delivered_vs_offered",
            "cpu_per_1000",
        ):
            assert f"{stem}_{regime}.png" in names
    assert paths[-1] == out / "report.md"
    for path in paths:
        assert path.parent == out and path.is_file()
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            assert path.stat().st_size > 5000


def test_report_header_and_every_case(markdown: str) -> None:
    assert COMMAND in markdown
    assert "Linux x86_64, 2 cores, 24 GiB" in markdown
    assert "2026-11-25T03:40:00Z" in markdown
    assert "612 s (10.2 min)" in markdown
    for label in (
        "process x1",
        "process x2",
        "thread x1",
        "thread-direct",
        "naive",
        "aiobotocore",
        "redis-manager x3",
    ):
        assert f"### handoff: {label}\n" in markdown
    assert "## How to read this" in markdown
    for plot in ("latency_p99_vs_rate_handoff.png", "cpu_per_1000_fanout.png"):
        assert f"]({plot})" in markdown  # embedded with a relative link


def test_regime_table_values_and_ratios(markdown: str) -> None:
    handoff = section(markdown, "## Regime: handoff")
    assert "**1,000 msg/s**" in handoff  # every case sustained 1000, not all 2000
    rows = {row["Case"]: row for row in table(handoff)}
    assert list(rows) == [
        "process x1",
        "process x2",
        "thread x1",
        "thread-direct",
        "naive",
        "aiobotocore",
        "redis-manager x3",
    ]
    thread = rows["thread x1"]
    assert thread["p99 latency (ms)"] == "50.0"
    assert thread["p50 latency (ms)"] == "25.0"
    assert thread["p99 latency / process"] == "2.50"  # 50.0 / process x1's 20.0
    assert thread["loop lag p99 / process"] == "20.00"  # 40.0 / 2.0
    assert thread["max rate / process"] == "1.00"
    assert thread["CPU server (s/1k)"] == "0.90"
    assert thread["CPU total (s/1k)"] == "2.10"  # server + workers, not the load generators
    assert thread["Peak server RSS (MB)"] == "80.0"

    # Compared with the process case with the same consumers; itself gives 1.
    assert rows["process x2"]["p99 latency / process"] == "1.00"
    assert rows["process x2"]["max rate / process"] == "1.00"
    assert rows["process x1"]["max rate / process"] == "1.00"
    # No process x3: compared with the first process case, and the report says so.
    assert rows["redis-manager x3"]["p99 latency / process"] == "0.80"  # 16.0 / 20.0
    assert rows["redis-manager x3"]["max rate / process"] == "2.00"
    assert "redis-manager x3 is compared with process x1" in handoff

    direct = rows["thread-direct"]
    assert direct["p99 ping RTT (ms)"] == "—"
    assert direct["CPU workers (s/1k)"] == "—"
    assert direct["CPU total (s/1k)"] == "2.10"
    assert direct["Max sustained (msg/s)"] == "1,000"  # worked out from the steps
    naive = rows["naive"]
    assert naive["p99 latency (ms)"] == "—"
    assert naive["p99 latency / process"] == "—"
    assert naive["p99 loop lag (ms)"] == "—"


def test_regime_with_no_common_sustained_rate(markdown: str) -> None:
    fanout = section(markdown, "## Regime: fanout")
    assert "**100 msg/s**" in fanout
    assert "No offered rate was sustained by every case" in fanout
    assert "1,000 clients" in fanout
    rows = {row["Case"]: row for row in table(fanout)}
    assert rows["thread x1 (saturated)"]["p99 latency / process"] == "1.50"  # 90 / 60
    assert rows["thread x1 (saturated)"]["max rate / process"] == "—"  # 0 / 0


def test_case_details_notes_and_errors(markdown: str) -> None:
    naive = section(markdown, "### handoff: naive")
    steps = table(naive)
    assert [s["Offered (msg/s)"] for s in steps] == ["500", "1,000", "2,000"]
    assert [s["Saturated"] for s in steps] == ["no", "no", "**yes**"]
    assert [s["Errors"] for s in steps] == ["1", "1", "1"]
    assert "asyncio.run got a function" in naive
    assert "- at 500, 1,000 msg/s (2 times): `RuntimeWarning: coroutine never awaited`" in naive
    assert "emit \\| on the wrong loop" in naive  # a pipe cannot break the table


def test_plot_titles_name_regime_backend_and_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles: dict[str, str] = {}
    save = plots.save

    def record(fig: Any, path: Path) -> Path:
        axes = fig.axes[0]
        titles[path.name] = axes.get_title()
        assert axes.get_xlabel() and "(" in axes.get_ylabel()  # labelled, with units
        return save(fig, path)

    monkeypatch.setattr(plots, "save", record)
    write_report(make_results(), tmp_path)
    assert len(titles) == 10
    for name, title in titles.items():
        regime, clients = ("fanout", "1,000") if "fanout" in name else ("handoff", "5")
        assert f"{regime} regime" in title
        assert "backend fast" in title
        assert f"{clients} clients" in title


def test_empty_results(tmp_path: Path) -> None:
    paths = write_report(BenchResults(), tmp_path / "new")
    assert paths == [tmp_path / "new" / "report.md"]
    text = paths[0].read_text(encoding="utf-8")
    assert "No cases were run." in text
    assert "| Machine | — |" in text


def test_comparison_rate() -> None:
    sustained = ramp(step(500, 1.0), step(1000, 1.0), step(2000, 1.0))
    top_saturated = ramp(step(500, 1.0), step(1000, 1.0), step(2000, 1.0, saturated=True))
    assert comparison_rate([]) is None
    assert comparison_rate([[], []]) is None
    assert comparison_rate([sustained]) == 2000
    assert comparison_rate([sustained, top_saturated]) == 1000
    assert comparison_rate([sustained, sustained[:2]]) == 1000  # a case that stopped early
    assert comparison_rate([sustained, []]) == 2000  # a case with no steps is ignored
    assert comparison_rate([ramp({"offered_rate": 300}), ramp({"offered_rate": 300})]) == 300


def test_comparison_rate_falls_back_to_the_lowest_rate() -> None:
    all_saturated = ramp(step(500, 1.0, saturated=True), step(1000, 1.0, saturated=True))
    sustained = ramp(step(250, 1.0), step(500, 1.0), step(1000, 1.0))
    assert comparison_rate([sustained, all_saturated]) == 500  # lowest rate both offered
    assert comparison_rate([ramp(step(100, 1.0)), ramp(step(200, 1.0, saturated=True))]) == 100


def test_ratio() -> None:
    assert ratio(3, 1.5) == 2.0
    assert ratio(0, 4) == 0.0
    assert ratio(None, 1) is None
    assert ratio(1, None) is None
    assert ratio(1, 0) is None
    assert ratio(1, 0.0) is None
    assert ratio(math.nan, 1) is None
    assert ratio("1", 2) is None


def test_fmt() -> None:
    assert fmt(None) == "—"
    assert fmt(7.06) == "7.1"
    assert fmt(1234.5, 0, thousands=True) == "1,234"
    assert fmt(0.456, 2) == "0.46"
    assert fmt(math.inf) == "—"


def test_print_summary() -> None:
    buffer = io.StringIO()
    print_summary(make_results(), Console(file=buffer, width=200))
    text = buffer.getvalue()
    for label in ("process x1", "process x2", "thread-direct", "naive", "redis-manager x3"):
        assert label in text
    assert "handoff" in text and "fanout" in text
    assert "2.50" in text  # thread x1's p99 latency against process x1
    assert "compared at the lowest rate" in text  # the fanout regime's footnote


def test_summary_table_rows() -> None:
    assert summary_table(make_results()).row_count == 10
    assert summary_table(BenchResults()).row_count == 0


def test_main_rebuilds_from_saved_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "results.json"
    source.write_text(make_results().model_dump_json(), encoding="utf-8")
    assert report.main([str(source)]) == 0
    assert (tmp_path / "report.md").is_file()
    assert "process x2" in capsys.readouterr().out


def test_sparse_input(tmp_path: Path) -> None:
    """Missing keys, None, zeros and an empty case degrade to "—" without errors or warnings."""
    results = BenchResults.model_validate(
        {
            "meta": {"command": None, "duration_s": None},
            "cases": [
                {"mode": "process", "consumers": 1, "steps": [{"offered_rate": 100}]},
                {
                    "mode": "thread",
                    "consumers": 2,
                    "steps": [
                        {"offered_rate": 100, "latency_ms": {"p99": 0.0}, "loop_lag_ms": None}
                    ],
                },
                {"mode": "naive", "label": "naive | broken", "steps": []},
            ],
        }
    )
    paths = write_report(results, tmp_path)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Regime: default" in text
    assert "**100 msg/s**" in text
    rows = {row["Case"]: row for row in table(section(text, "## Regime: default"))}
    assert set(rows) == {"process", "thread x2", "naive \\| broken"}
    assert rows["thread x2"]["p99 latency (ms)"] == "0.0"
    assert rows["thread x2"]["p99 latency / process"] == "—"  # the process case has none
    assert rows["naive \\| broken"]["Max sustained (msg/s)"] == "0"
    assert "No steps recorded." in text
    # A zero latency cannot go on a log axis, so there is no latency plot; delivered neither.
    assert [p.name for p in paths] == ["report.md"]
    buffer = io.StringIO()
    print_summary(results, Console(file=buffer, width=80))
    assert "thread x2" in buffer.getvalue()


@pytest.mark.parametrize(
    "case",
    [
        {"mode": "thread", "steps": ["not a step"]},
        {"mode": "thread", "steps": [{"offered_rate": None}]},  # a step is its offered rate
        {"steps": []},  # a case is its mode
        {"mode": "thread", "steps": [{"offered_rate": 1, "latency": {"p99": 2.0}}]},  # misspelt
    ],
)
def test_results_that_do_not_fit_the_models_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BenchResults.model_validate({"cases": [case]})


def test_unmeasured_distributions_are_written_as_null() -> None:
    step = StepResult.model_validate({"offered_rate": 100, "latency_ms": None})
    assert step.latency_ms.p99 is None  # read as "not measured", no None check needed
    written = json.loads(step.model_dump_json())
    assert written["latency_ms"] is None
    assert written["loop_lag_ms"] is None
    loop_lag = {"p50": 0.1, "p99": 2.0, "max": 3.0}  # no p95: the probe's buckets have none
    assert StepResult(offered_rate=1, loop_lag_ms=loop_lag).model_dump()["loop_lag_ms"] == loop_lag


def test_two_case_regime_names_its_comparison_rate_in_the_summary() -> None:
    results = BenchResults.model_validate(
        {
            "cases": [
                case("solo", "process", 1, "process x1", [step(300, 10.0)]),
                case("pair", "process", 1, "process x1", [step(300, 10.0)]),
                case("pair", "thread", 1, "thread x1", [step(300, 20.0)]),
            ]
        }
    )
    buffer = io.StringIO()
    print_summary(results, Console(file=buffer, width=120))
    assert buffer.getvalue().count("@ 300/s") == 2


def test_committed_run_reads_and_renders_as_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved run in bench/results/2-core still loads, writes back the same values and
    gives the committed report.md."""
    source = COMMITTED / "results.json"
    results = BenchResults.load(source)
    assert json.loads(results.model_dump_json()) == json.loads(source.read_text("utf-8"))

    def unsaved(fig: Any, path: Path) -> Path:  # the Markdown is under test, not the PNGs
        plots.plt.close(fig)
        return path

    monkeypatch.setattr(plots, "save", unsaved)
    write_report(results, tmp_path)
    committed = (COMMITTED / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == committed
