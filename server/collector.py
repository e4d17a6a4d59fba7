"""The garbage collector's passes, kept off what lives as long as a client
(docs/operations.md, "The garbage collector").

Many clients are many objects: about 140 that the collector tracks per connected client (its
engine.io socket, queues, tasks, coroutines, timers), 1.4 million with 10,000 clients. A full
pass visits every one of them and holds the event loop while it does: 0.4-0.75 s each at
10,000 clients on the project's machine. Connected clients are not garbage; what a client
leaves when it goes is (about 100 objects in cycles, which only a pass over the old
generation frees). So full passes follow departures here, not arrivals:

- :func:`tune_garbage_collector` freezes the start-up's objects out of every pass, collects
  the young generation every `GC_YOUNG_THRESHOLD` new objects (Python's: 700) and leaves
  Python's own full passes to its own rules at its own default frequency (considered after
  eleven middle passes, past its rule of a quarter more old objects), a backstop for garbage
  that is not a client's;
- :class:`FullPasses` runs a full pass once as many clients have gone as a quarter of those
  still connected (at least :data:`MIN_DEPARTURES`), so what they left never holds more than
  about a quarter of what the connected clients hold.

A connect storm therefore runs almost no full pass: with Python's thresholds a
10,000-client storm ran 16, and with a full pass considered after every two middle passes
(this server's rule until December 2026) 6, 2.3 s of the storm's 7.5 s of CPU.
"""

from __future__ import annotations

import asyncio
import gc
import logging

logger = logging.getLogger(__name__)

#: Middle passes between two considerations of a full one: Python's own default.
FULL_AFTER_MIDDLE = 10
#: The fewest departures that call for a full pass, however few clients remain.
MIN_DEPARTURES = 1_000


def tune_garbage_collector(young_threshold: int) -> int:
    """Freeze the start-up's objects (modules, the app: they live as long as the process)
    out of every pass (`gc.freeze`), and collect the young generation every
    `young_threshold` new objects. Returns how many objects were frozen. Cycles are all
    still collected, old ones too (by :class:`FullPasses` and Python's own full passes)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, gc.get_threshold()[1], FULL_AFTER_MIDDLE)
    frozen = gc.get_freeze_count()
    logger.info(
        "Garbage collector: %d start-up objects frozen, thresholds %s (GC_YOUNG_THRESHOLD)",
        frozen,
        gc.get_threshold(),
    )
    return frozen


class FullPasses:
    """A full collection once as many clients left as a quarter of those connected (at least
    `min_departures`), run as soon as the event loop is free (the leaving client's own
    objects are freed first)."""

    def __init__(self, min_departures: int = MIN_DEPARTURES) -> None:
        self.min_departures = min_departures
        self.departures = 0  # since the last pass this started
        self.passes = 0

    def client_gone(self, connected: int) -> None:
        """A client left; `connected` are still there."""
        self.departures += 1
        if self.departures >= max(self.min_departures, connected // 4):
            self.departures = 0
            asyncio.get_running_loop().call_soon(self._collect)

    def _collect(self) -> None:
        self.passes += 1
        gc.collect()
