"""`CONSUMER=thread`: the very same `Worker` as threads inside the server process.

This is the in-process design the benchmark compares against. Nothing else differs: each
thread has its own boto3 client and its own DEALER socket to the server's own `ZMQ_BIND`
(the same transport as a worker process), so the subscriber cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import zmq

from shared.counters import Counters
from shared.curve import configure_client
from shared.settings import Settings
from shared.sqs import WORKER_APP, make_sqs_client
from shared.tracing import Tracing
from worker.consumer import Worker
from worker.handoff import DealerHandoff

logger = logging.getLogger(__name__)


class InProcessWorkers:
    """K worker threads with one stop flag.

    Usage::

        workers = InProcessWorkers(settings, counters=counters)
        workers.start()
        await workers.close(deadline)  # finishes or returns each thread's batch, by deadline
    """

    def __init__(
        self, settings: Settings, *, counters: Counters, tracing: Tracing | None = None
    ) -> None:
        self._settings = settings
        self._tracing = tracing  # the server's: its worker threads' spans go with its own
        self.counters = counters  # the server's own: /healthz and /metrics show them
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        count = self._settings.worker_threads
        logger.info("CONSUMER=thread: starting %d worker thread(s) in the server process", count)
        for n in range(count):
            thread = threading.Thread(target=self._run, args=(n,), name=f"worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, n: int) -> None:
        # Sockets and clients are made in the thread that uses them.
        settings = self._settings
        handoff = DealerHandoff(
            endpoints=[settings.zmq_bind],
            ack_timeout_s=settings.ack_timeout_s,
            context=zmq.Context.instance(),
            configure=lambda sock: configure_client(sock, settings),
            counters=self.counters,
        )
        try:
            code = Worker(
                settings=settings,
                sqs=make_sqs_client(settings, app=WORKER_APP),
                handoff=handoff,
                stop=self._stop,
                counters=self.counters,
                name=f"worker thread {n}",
                tracing=self._tracing,
            ).run()
            if code != 0:
                logger.error(
                    "Worker thread %d refused to run (see above); this server consumes nothing "
                    "and /readyz says so",
                    n,
                )
        finally:
            handoff.close()

    async def close(self, deadline: float) -> None:
        """Set the stop flag and wait for the threads until `deadline` (a `time.monotonic()`
        instant) at the latest, off the event loop, which must keep confirming their last
        batches.

        A thread still running then (in a long poll, or waiting on SQS) is left behind: they
        are daemon threads, so they do not hold up the exit. What it still holds, or its poll
        still receives, reappears after the visibility timeout."""
        if not self._threads or self._stop.is_set():
            return
        self._stop.set()

        def join() -> list[str]:
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            return [t.name for t in self._threads if t.is_alive()]

        stuck = await asyncio.to_thread(join)
        if stuck:
            logger.warning(
                "%s still running at the stop deadline; leaving them (what they hold or still "
                "receive reappears after the visibility timeout)",
                ", ".join(stuck),
            )
