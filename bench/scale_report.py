"""The report of `python -m bench.scale`: scale.md (a table per case, a summary across
them and, when the `node` case ran, every figure as a ratio to Node's socket.io in the same
run) and scale.png (four panels against the number of clients)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt

from bench.results import SUSTAINED_DELIVERED, SUSTAINED_P99_MS
from bench.scale import NODE_MODE, ScaleCase, ScaleResults, ScaleStep

LABELS = {
    "node": "Node socket.io 4",
    "minimal": "stock python-socketio",
    "process": "process x2",
    "thread": "thread x2",
}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def first_step_figures(case: ScaleCase) -> tuple[float | None, float | None]:
    """p99 (ms) and server CPU per delivery (us) at the case's first, lightest step."""
    if not case.steps:
        return None, None
    return case.steps[0].latency_ms.p99, case.steps[0].us_per_delivery


def cpu_ms_per_connect(case: ScaleCase) -> float | None:
    """The server process's CPU over the connect storm, per client connected (ms)."""
    if case.connect_cpu_s is None or not case.connected:
        return None
    return case.connect_cpu_s / case.connected * 1000


def rss_kb_per_connection(case: ScaleCase) -> float | None:
    """The server's RSS with everyone connected over its RSS idle, per client (KB)."""
    if case.rss_idle_mb is None or case.rss_connected_mb is None or not case.connected:
        return None
    return (case.rss_connected_mb - case.rss_idle_mb) * 1024 / case.connected


def _against(value: float | None, node: float | None, digits: int = 1) -> str:
    """`value` and its ratio to Node's: "21.6 (0.87x)"."""
    if value is None:
        return "—"
    if not node:
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} ({value / node:.2f}x)"


def against_node(results: ScaleResults) -> list[str]:
    """Every case's figures beside the `node` case's with as many clients, as ratios to it;
    nothing when `node` did not run."""
    nodes = {c.clients: c for c in results.cases if c.mode == NODE_MODE}
    if not nodes:
        return []
    lines = [
        "",
        f"## Against Node's socket.io ({results.node_server or 'socket.io 4'}, default "
        "settings), same run, same clients",
        "",
        "Each cell: the figure, and in brackets its ratio to Node's with as many clients "
        "(below 1: less than Node). Latency starts at the producer's send to SQS for every "
        "case but `node`, whose broadcasts are triggered by its own timer (no queue, no "
        "worker) and whose latency starts at that trigger; the emit -> client p99 (from the "
        "server's emit, stamped in the payload, to the client's receive) is the one that "
        "compares across all. Stock's payload carries no emit time.",
        "",
        "| Case | Clients | CPU per connect (ms) | Connect storm (s) | RSS idle (MB) "
        "| RSS per connection (KB) |",
        "| :--- | ---: | ---: | ---: | ---: | ---: |",
    ]
    cases = [c for c in results.cases if c.clients in nodes]
    for case in cases:
        node = nodes[case.clients]
        lines.append(
            f"| {LABELS.get(case.mode, case.mode)} | {case.clients:,} "
            f"| {_against(cpu_ms_per_connect(case), cpu_ms_per_connect(node), 2)} "
            f"| {_against(case.connect_s, node.connect_s, 2)} "
            f"| {_against(case.rss_idle_mb, node.rss_idle_mb, 0)} "
            f"| {_against(rss_kb_per_connection(case), rss_kb_per_connection(node), 0)} |"
        )
    lines += [
        "",
        "| Case | Clients | Offered deliveries/s | Server CPU per delivery (us) | p50 (ms) "
        "| p99 (ms) | Emit→client p99 (ms) |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for clients, node in nodes.items():
        for node_step in node.steps:
            for case in (c for c in cases if c.clients == clients):
                step = _step_at(case, node_step.deliveries_offered)
                if step is None:
                    continue
                lines.append(
                    f"| {LABELS.get(case.mode, case.mode)} | {clients:,} "
                    f"| {step.deliveries_offered:,.0f} "
                    f"| {_against(step.us_per_delivery, node_step.us_per_delivery)} "
                    f"| {_against(step.latency_ms.p50, node_step.latency_ms.p50)} "
                    f"| {_against(step.latency_ms.p99, node_step.latency_ms.p99)} "
                    f"| {_against(step.emit_latency_ms.p99, node_step.emit_latency_ms.p99)} |"
                )
    return lines


def _step_at(case: ScaleCase, offered: float) -> ScaleStep | None:
    return next((s for s in case.steps if s.deliveries_offered == offered), None)


def per_cpu_second(case: ScaleCase) -> float | None:
    """What one core of the server delivers: the inverse of its CPU per delivery."""
    us = first_step_figures(case)[1]
    return 1e6 / us if us else None


def render(results: ScaleResults) -> str:
    meta = results.meta
    lines = [
        "# Many clients on one server process",
        "",
        f"`{meta.command}` on {meta.machine}, Python {meta.python}, {meta.started}, "
        f"{_fmt(meta.duration_s, 0)} s; SQS back end: {meta.backend}.",
        *(
            [
                "",
                f"Load average (1, 5, 15 min): {', '.join(map(str, results.load_avg_start))} "
                f"as the run began, {', '.join(map(str, results.load_avg_end or ()))} as it "
                "ended; each case's 1-minute load as it began is in the table.",
            ]
            if results.load_avg_start
            else []
        ),
        *(
            [
                "",
                f"`node`: Node's {results.node_server} with its default settings "
                "(bench/node_server.mjs), broadcasting this relay's payload from its own "
                "timer, paced as the producer paces its sends; its latency starts at that "
                "trigger (the others': at the producer's send to SQS).",
            ]
            if results.node_server
            else []
        ),
        "",
        "Clients: socket.io-client 4.8.1 (the demo page's build) in Node over "
        f"{results.client_websocket}, websocket transport. A step "
        f"is sustained while p99 <= {SUSTAINED_P99_MS:.0f} ms and >= "
        f"{SUSTAINED_DELIVERED:.0%} is delivered. CPU per delivery is the server process's "
        "CPU seconds over the step divided by the deliveries.",
        "",
        "| Case | Clients | Connects spread over (s) | All connected in (s) "
        "| Attempts retried | Gave up | Server CPU per connect (ms) | RSS idle (MB) "
        "| RSS connected (MB) | Max sustained deliveries/s | p99 @ first step (ms) "
        "| Server CPU per delivery @ first step (us) | Deliveries per server CPU-second "
        "| Load (1 min) at start |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for case in results.cases:
        p99, us = first_step_figures(case)
        lines.append(
            f"| {LABELS.get(case.mode, case.mode)} | {case.clients:,} "
            f"| {_fmt(case.storm_s) if case.storm_s else 'at once'} | {_fmt(case.connect_s)} "
            f"| {case.connect_retries:,} | {case.connect_failed:,} "
            f"| {_fmt(cpu_ms_per_connect(case), 2)} | {_fmt(case.rss_idle_mb, 0)} "
            f"| {_fmt(case.rss_connected_mb, 0)} | {case.max_sustained_deliveries:,.0f} "
            f"| {_fmt(p99)} | {_fmt(us)} | {_fmt(per_cpu_second(case), 0)} "
            f"| {_fmt(case.load_1m, 2)} |"
        )
    lines += against_node(results)
    for case in results.cases:
        lines += [
            "",
            f"## {LABELS.get(case.mode, case.mode)}, {case.clients:,} clients",
            "",
            *(f"- {note}" for note in case.notes),
            *(
                [f"Steps began {case.settle_s:g} s after the last client connected.", ""]
                if case.settle_s
                else []
            ),
            "| Offered deliveries/s | Broadcasts/s | Sent | Delivered | Deliveries/s | p50 (ms) "
            "| p99 (ms) | max (ms) | Server emit→client p99 (ms) | Server CPU (s) "
            "| Server CPU per delivery (us) | Clients' CPU per delivery (us) "
            "| Peak server RSS (MB) | Saturated |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: |",
        ]
        for s in case.steps:
            lines.append(
                f"| {s.deliveries_offered:,.0f} | {s.rate:g} | {s.sent:,} "
                f"| {s.delivered_share:.2%} | {s.deliveries_per_s:,.0f} "
                f"| {_fmt(s.latency_ms.p50)} | {_fmt(s.latency_ms.p99)} "
                f"| {_fmt(s.latency_ms.max)} | {_fmt(s.emit_latency_ms.p99)} "
                f"| {s.server_cpu_s:.2f} | {_fmt(s.us_per_delivery)} "
                f"| {_fmt(s.clients_us_per_delivery)} "
                f"| {_fmt(s.peak_server_rss_mb, 0)} | {'**yes**' if s.saturated else 'no'} |"
            )
    lines += ["", "![Against the number of clients](scale.png)", ""]
    return "\n".join(lines)


def plot(results: ScaleResults, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        (axes[0][0], "Deliveries per server CPU-second, 1st step", per_cpu_second),
        (axes[0][1], "Server CPU per delivery (us), 1st step", lambda c: first_step_figures(c)[1]),
        (axes[1][0], "Server RSS, all connected (MB)", lambda c: c.rss_connected_mb),
        (axes[1][1], "p99 latency (ms), first step", lambda c: first_step_figures(c)[0]),
    ]
    modes = list(dict.fromkeys(c.mode for c in results.cases))
    for ax, title, value in panels:
        for marker, mode in zip("osD^v", modes, strict=False):
            cases = sorted((c for c in results.cases if c.mode == mode), key=lambda c: c.clients)
            points = [(c.clients, value(c)) for c in cases if value(c) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker=marker, label=LABELS.get(mode, mode))
        ax.set_xscale("log")
        ax.set_xlabel("connected clients")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"Many clients on one server process ({results.meta.machine})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scale_report scale.json``: rebuild the report beside a saved run."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.scale_report scale.json", file=sys.stderr)
        return 2
    source = Path(args[0])
    results = ScaleResults.model_validate_json(source.read_text(encoding="utf-8"))
    for path in write_scale_report(results, source.parent):
        print(path)
    return 0


def write_scale_report(results: ScaleResults, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    png = out / "scale.png"
    plot(results, png)
    md = out / "scale.md"
    md.write_text(render(results), encoding="utf-8")
    return [png, md]


if __name__ == "__main__":
    sys.exit(main())
