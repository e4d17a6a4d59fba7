"""`python -m worker`: one SQS consumer process. Scale with `honcho start -c worker=N`."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import zmq
from prometheus_client import Gauge, make_wsgi_app

from shared.counters import WORKER_NAMES, Counters
from shared.curve import configure_client
from shared.metrics import registry_for
from shared.settings import Settings, SettingsError
from shared.sqs import WORKER_APP, make_sqs_client
from shared.startup import start
from shared.tracing import start_tracing
from worker.consumer import Worker
from worker.handoff import DealerHandoff

logger = logging.getLogger("worker")

DESCRIPTION = """\
Consume the SQS queue (SQS_QUEUE_URL) with blocking boto3 long polls and hand each message to
the Socket.IO server(s) over ZeroMQ (ZMQ_CONNECT, else ZMQ_BIND); delete it only once every
server that answers confirmed it. Installed as the command sqs-relay-worker; run several to
scale. Settings come from the environment and a .env file in the current folder, none on the
command line: each is listed with its default in the repository's .env.example and
docs/settings.md. SIGTERM/SIGINT stop it within SHUTDOWN_TIMEOUT_S. Exits with status 2 if a
setting is wrong or ACK_TIMEOUT_S is not below the queue's visibility timeout.
"""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes: no log
        pass


def health_app(worker: Worker, metrics: Callable[..., Iterable[bytes]]) -> Callable[..., Any]:
    """The worker's HTTP endpoints: /healthz (alive: 200, with its counters), /readyz (200
    when its last SQS call succeeded and a server takes its batches, else 503 with the
    reasons) and, on any other path, Prometheus's /metrics."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        problems = worker.problems()
        if path == "/healthz":
            status = "200 OK"
            counters = {
                f"{name}[{reason}]" if reason else name: value
                for (name, reason), value in sorted(worker.counters.snapshot().items())
            }
            body: dict[str, Any] = {"status": "ok", "counters": counters, "problems": problems}
        else:
            status = "503 Service Unavailable" if problems else "200 OK"
            body = {"ready": not problems, "reasons": problems}
        data = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def serve_metrics(worker: Worker, settings: Settings) -> None:
    """Each worker serves its own /metrics, /readyz and /healthz: the Prometheus way (scrape
    every process), and a worker's figures stay visible while no server is up, when they
    matter most."""
    registry = registry_for(worker.counters, WORKER_NAMES)
    in_flight = Gauge(
        "relay_worker_in_flight_messages",
        "Messages handed to the server(s) over ZeroMQ, not yet confirmed.",
        registry=registry,
    )
    in_flight.set_function(lambda: worker.in_flight)
    assert settings.metrics_port is not None
    app = health_app(worker, make_wsgi_app(registry))
    try:
        httpd = make_server(
            settings.host, settings.metrics_port, app, _Server, handler_class=_QuietHandler
        )
    except OSError as exc:
        logger.warning("No metrics endpoint: METRICS_PORT=%d: %s", settings.metrics_port, exc)
        return
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    logger.info(
        "Metrics at http://%s:%d/metrics (and /readyz, /healthz)",
        settings.host,
        settings.metrics_port,
    )


def main(argv: list[str] | None = None) -> int:
    settings = start("worker", DESCRIPTION, argv)
    if settings is None:
        return 2

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # Like uvicorn: a second Ctrl-C forces the exit. A SIGTERM after the terminal's SIGINT
        # is what honcho sends on Ctrl-C, so that one must not.
        if stop.is_set() and signum == signal.SIGINT:
            logger.warning("Second SIGINT: exiting now")
            os._exit(1)
        logger.info("Received %s; finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    context = zmq.Context()
    counters = Counters()  # one set for the process: the hand-off counts unavailable servers
    try:
        handoff = DealerHandoff(
            endpoints=settings.worker_endpoints,
            ack_timeout_s=settings.ack_timeout_s,
            context=context,
            configure=lambda sock: configure_client(sock, settings),
            counters=counters,
            one_server=settings.cluster,
            resolve_s=settings.zmq_resolve_s,
        )
    except SettingsError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    tracing = start_tracing(settings, service="sqs-relay-worker")
    worker = Worker(
        settings=settings,
        sqs=make_sqs_client(settings, app=WORKER_APP),
        handoff=handoff,
        stop=stop,
        counters=counters,
        name="worker",
        tracing=tracing,
    )
    if settings.metrics_port is not None:
        serve_metrics(worker, settings)
    else:
        logger.info("No metrics endpoint (METRICS_PORT unset)")
    # The loop runs in a thread so that this (main) thread stays free for signals: a blocking
    # 20-second long poll in the main thread would delay the stop flag by as much.
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(worker.run()), name="worker")
    thread.daemon = True
    thread.start()
    # Sleep-and-look rather than stop.wait(): the signal handler calls stop.set(), which takes
    # the Event's lock, and would deadlock if the signal landed while this thread held it.
    while thread.is_alive() and not stop.is_set():
        time.sleep(0.2)
    # The worker ends its open long poll at once and finishes or returns its batch within the
    # stop's one deadline (SHUTDOWN_TIMEOUT_S from the signal); this waits for no more than that.
    thread.join(worker.stop_deadline.remaining())
    # From here on the process is only exiting: a second SIGTERM (honcho's, after a terminal's
    # SIGINT) must not turn a clean exit into "killed by SIGTERM".
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if thread.is_alive():
        logger.warning(
            "The worker did not finish within SHUTDOWN_TIMEOUT_S=%.1f s; exiting without it "
            "(messages it still holds reappear after the queue's visibility timeout)",
            settings.shutdown_timeout_s,
        )
        logging.shutdown()
        os._exit(0)  # the daemon thread owns its sockets; context.term() would wait for them
    handoff.close()
    context.term()
    if tracing is not None:
        tracing.close(timeout_s=worker.stop_deadline.remaining() or 0.0)
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
