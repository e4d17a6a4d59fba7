"""deploy/monitoring/: the Grafana dashboard, the Prometheus alerting rules, their unit tests
and the sample scrape config, checked with the tools of Debian's `prometheus` package
(promtool, and a real Prometheus scraping a real server and worker under load)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import RecordingClient
from tests.integration.helpers import report, send, send_async
from tests.processes import ROOT, Process, Processes, Stack, free_port, wait_until

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "relay-alerts.yml"
RULE_TESTS = MONITORING / "relay-alerts.test.yml"
SCRAPE_CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "relay-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
JOBS = ("relay-server", "relay-worker")
#: What Grafana's $__rate_interval stands for when a query goes to Prometheus directly: 30
#: scrapes at the test's 1 s interval (Grafana makes it at least 4 scrape intervals).
RATE_INTERVAL = "30s"
#: The metrics the dashboard must show (issue 32): each in at least one panel's query.
SHOWN = {
    "relay_end_to_end_seconds_bucket", "relay_emitted_total", "relay_delivered_total",
    "relay_dead_lettered_total", "relay_recovery_failed_total",
    "relay_slow_client_disconnected_total", "relay_connected_clients",
    "relay_workers_connected", "relay_worker_in_flight_messages",
    "relay_event_loop_lag_seconds_bucket", "relay_redis_errors_total",
    "relay_duplicate_dropped_total", "relay_presence_events_dropped_total",
}  # fmt: skip


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, (
        f"{name} not found: it comes with Debian's prometheus package, which .ci/run installs "
        "(apt-get install prometheus)"
    )
    return path


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def alerts(path: Path = RULES) -> dict[str, dict[str, Any]]:
    """Every alerting rule of a rules file, by name."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def rule_test_cases() -> list[dict[str, Any]]:
    """Every test group of relay-alerts.test.yml, with its alert_rule_test entries."""
    return list(yaml.safe_load(RULE_TESTS.read_text())["tests"])


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    """The dashboard's panels (rows left out, and those nested in a collapsed row included)."""
    found = []
    for panel in dashboard()["panels"]:
        found.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return found


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, as Prometheus gets it."""
    queries = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            assert "$" not in expr, f"{panel['title']}: a Grafana variable is left in {expr!r}"
            queries.append((f"{panel['title']} [{target['refId']}]", expr))
    return queries


def metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(r"\brelay_[a-z0-9_]+", expr)}


# --- promtool ------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_alerting_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_check_config_accepts_the_sample_scrape_config_and_its_rule_file() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == list(JOBS)
    assert config["rule_files"] == [RULES.name]
    done = promtool("check", "config", SCRAPE_CONFIG.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout  # it loaded relay-alerts.yml


def test_every_alert_has_a_firing_and_a_quiet_unit_test_and_promtool_passes_them() -> None:
    # Given the unit tests' cases, as (alert, fires?)
    cases = {
        (check["alertname"], bool(check["exp_alerts"]))
        for group in rule_test_cases()
        for check in group["alert_rule_test"]
    }
    # Then each alert has both kinds, and no case names an alert that does not exist
    expected = {(name, fires) for name in alerts() for fires in (True, False)}
    assert cases == expected
    assert len(alerts()) >= 8
    # And promtool passes them all
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize("alert", sorted(alerts()))
def test_a_rule_that_never_fires_fails_its_firing_cases_and_one_that_always_fires_its_quiet_cases(
    alert: str, tmp_path: Path
) -> None:
    """The unit tests can fail: each case really checks its alert's expression."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    cases: dict[bool, set[str]] = {True: set(), False: set()}
    ours = []  # this alert's cases only: promtool runs faster
    for case in rule_test_cases():
        checks = [check for check in case["alert_rule_test"] if check["alertname"] == alert]
        if checks:
            ours.append(case | {"alert_rule_test": checks})
        for check in checks:
            cases[bool(check["exp_alerts"])].add(case["name"])
    unit_tests = yaml.safe_load(RULE_TESTS.read_text())
    (tmp_path / RULE_TESTS.name).write_text(yaml.safe_dump(unit_tests | {"tests": ours}))
    for fires, expr in ((True, "vector(1) < 0"), (False, "vector(1)")):
        # Given the rules with this alert's expression replaced by one that never (always) fires
        for group in groups:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    rule["expr"] = expr
        (tmp_path / RULES.name).write_text(yaml.safe_dump({"groups": groups}))
        # When promtool runs the unit tests
        done = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
        # Then they fail, and every firing (quiet) case of the alert is among the failures
        output = done.stdout + done.stderr
        assert done.returncode == 1, output
        assert cases[fires]
        assert all(f"name: {name}," in output for name in cases[fires]), (expr, output)


# --- the dashboard and the docs -------------------------------------------------------------


def test_the_dashboard_asks_for_its_prometheus_datasource_at_import_and_shows_every_metric() -> (
    None
):
    board = dashboard()
    # The datasource is an input, chosen at import (Dashboards > Import), not a uid of ours
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    assert panels()
    for panel in panels():
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"] and all(t["datasource"] == source for t in panel["targets"])
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == [
        "Latency", "Throughput", "Failures", "Connections", "Processes",
    ]  # fmt: skip
    # Every metric issue 32 names has a panel
    assert metric_names([expr for _, expr in panel_queries()]) >= SHOWN


def test_every_alert_points_at_its_runbook_in_the_manual() -> None:
    text = OPERATIONS.read_text()
    assert "\n## Dashboard and alerts\n" in text  # the anchor #dashboard-and-alerts
    for name, rule in alerts().items():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), name
        assert annotations["runbook"] == f"docs/operations.md#dashboard-and-alerts ({name})"
        assert f"**{name}**" in text, f"docs/operations.md does not explain {name}"


# --- a running relay and a real Prometheus --------------------------------------------------


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; an error (a query that does not parse) fails."""
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise AssertionError(f"{expr}: {exc.code} {exc.read().decode()}") from None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def exported(url: str) -> set[str]:
    """The sample names of a /metrics page (histograms as _bucket, _count, _sum)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def start_prometheus(
    processes: Processes, tmp_path: Path, targets: dict[str, str]
) -> tuple[Process, str]:
    """A real Prometheus on the sample config, each job's targets replaced by `targets[job]`,
    scraping and evaluating the rules every second; returns it and its base URL."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (tmp_path / SCRAPE_CONFIG.name).write_text(yaml.safe_dump(config))
    shutil.copy(RULES, tmp_path / RULES.name)  # rule_files is relative to the config file
    port = free_port()
    process = processes.spawn(
        "prometheus",
        [binary("prometheus"), f"--config.file={tmp_path / SCRAPE_CONFIG.name}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        {"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:  # 503 while it starts
            exc.close()
            return False

    process.wait_ready(ready, what="Prometheus")
    return process, url


async def test_every_metric_the_dashboard_and_alerts_query_is_on_a_running_relays_metrics(
    processes: Processes, stack: Stack
) -> None:
    # Given a server and a worker with its own /metrics, one event and one poison message sent
    metrics_port = free_port()
    processes.sqs(stack)
    processes.server(stack)
    processes.worker(stack, METRICS_PORT=str(metrics_port))
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    send(sqs, stack.queue_url, [{"event": "e", "data": 1}])
    send(sqs, stack.queue_url, ["not json"], raw=True)
    await client.wait_for(1)
    worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
    await asyncio.to_thread(
        wait_until, lambda: "relay_dead_lettered_total" in exported(worker_url), timeout_s=30,
        what="the poison message dead-lettered",
    )  # fmt: skip
    # When the names the dashboard's and the alerts' queries use are compared with both pages
    there = exported(f"{stack.base_url}/metrics") | exported(worker_url)
    named = metric_names([e for _, e in panel_queries()] + [r["expr"] for r in alerts().values()])
    # Then each is there (a typo would not be)
    assert named >= SHOWN
    assert sorted(named - there) == []
    await client.close()


async def test_a_real_prometheus_scraping_a_relay_under_load_has_data_for_every_panel(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given a server, a worker with its own /metrics, and a real Prometheus scraping both every
    # second with the alerting rules loaded
    metrics_port = free_port()
    processes.sqs(stack)
    processes.server(stack)
    processes.worker(stack, METRICS_PORT=str(metrics_port))
    started = time.monotonic()
    targets = {"relay-server": stack.http_port, "relay-worker": metrics_port}
    _, prometheus = start_prometheus(
        processes, tmp_path, {job: f"127.0.0.1:{port}" for job, port in targets.items()}
    )
    # And every panel's query parses (an error now is not a lack of data)
    for _, expr in panel_queries():
        query(prometheus, expr)
    await asyncio.to_thread(
        wait_until,
        lambda: [r["value"][1] for r in query(prometheus, f"sum(up{{job=~{'|'.join(JOBS)!r}}})")]
        == ["2"],
        timeout_s=30, what="Prometheus to scrape the server and the worker",
    )  # fmt: skip

    # When a connected client receives events sent without pause, and a poison message passes
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    sent = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal sent
        while not stop.is_set():
            await send_async(sqs, stack.queue_url, [{"event": "e", "data": i} for i in range(10)])
            sent += 10

    sender = asyncio.create_task(load())
    send(sqs, stack.queue_url, ["not json"], raw=True)

    # Then, once Prometheus has scraped the traffic, every panel's query returns data
    def empty_panels() -> list[str]:
        return [title for title, expr in panel_queries() if not query(prometheus, expr)]

    def ready() -> bool:
        moving = query(prometheus, f"sum(rate(relay_delivered_total[{RATE_INTERVAL}])) > 0")
        return bool(moving) and not empty_panels()

    try:
        await asyncio.to_thread(
            wait_until, ready, timeout_s=45, what="data in every panel while events flow"
        )
    except TimeoutError:
        raise AssertionError(f"panels without data: {empty_panels()}") from None
    finally:
        stop.set()
        await sender

    # And Prometheus evaluates every alerting rule without error
    def health() -> dict[str, str]:
        groups = get_json(f"{prometheus}/api/v1/rules?type=alert")["data"]["groups"]
        return {rule["name"]: rule["health"] for g in groups for rule in g["rules"]}

    evaluated = await asyncio.to_thread(
        wait_until, lambda: (h := health()) and "unknown" not in h.values() and h, timeout_s=10,
        what="every alerting rule evaluated",
    )  # fmt: skip
    assert evaluated == dict.fromkeys(alerts(), "ok")

    # And the poison message's first dead letter fires RelayDeadLetters; nothing fires (or is
    # about to fire) RelayTargetDown or RelayNoWorkers
    def active() -> set[tuple[str, str | None]]:
        found = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("reason")) for a in found}

    await asyncio.to_thread(
        wait_until, lambda: ("RelayDeadLetters", "not_json") in active(), timeout_s=10,
        what="RelayDeadLetters to fire for the poison message",
    )  # fmt: skip
    assert not {name for name, _ in active()} & {"RelayTargetDown", "RelayNoWorkers"}

    def value(expr: str) -> float:
        return round(float(query(prometheus, expr)[0]["value"][1]), 3)

    report(
        "monitoring",
        s=round(time.monotonic() - started, 1),
        sent=sent,
        received=len(client.events),
        panel_queries=len(panel_queries()),
        emitted_per_s=value(f"sum(rate(relay_emitted_total[{RATE_INTERVAL}]))"),
        end_to_end_p99_s=value(
            next(e for t, e in panel_queries() if t.startswith("End") and "0.99" in e)
        ),
    )
    await client.close()
