"""The garbage collector's passes, kept off what lives as long as a client
(docs/operations.md, "The garbage collector").

Many clients are many objects: about 140 that the collector tracks per connected client (its
engine.io socket, queues, tasks, coroutines, timers), 1.4 million with 10,000 clients.
Python's middle and full passes visit them again and again while they live, and hold the
event loop while they do: at 10,000 clients a middle pass took up to 0.15 s and a full one
0.6-0.8 s on the project's machine, and in a 10,000-client connect storm they were 1.2-1.4 s
of the server's 5 s of CPU. Connected clients are not garbage; what a client leaves when it
goes is (about 100 objects in cycles). So :class:`Collector` runs the passes this way:

- **Young passes only, as Python runs them**, every `GC_YOUNG_THRESHOLD` new objects
  (Python's: 700): what dies young, in cycles, is freed there, as before.
- **What survives a young pass is set aside** with the start-up's objects (`gc.freeze()`, a
  list splice, no visit): no later pass visits it again. Objects set aside are still freed
  the moment nothing refers to them (reference counting); only cycles among them wait.
- **Full passes as clients go**: once as many clients have gone as a quarter of those still
  connected (at least :data:`MIN_DEPARTURES`), everything set aside is put back
  (`gc.unfreeze()`), collected in one full pass, and what survives is set aside again. What
  departed clients left never holds more than about a quarter of what connected ones hold.
- **A full pass for growth that connections do not explain**, the backstop for garbage that
  is not a client's: every :data:`CHECK_EVERY` young passes, the objects set aside are
  counted (~17 ms per million); if they grew since the last full pass by more than
  :data:`OBJECTS_PER_CLIENT` per connection open beyond those open then, and by more than a
  quarter of what the last pass kept (at least :data:`MIN_GROWTH`), a full pass runs.

A connect storm therefore runs neither middle nor full passes over the connected clients:
10,000 clients at once cost the server 0.32-0.46 ms of CPU per connect, against 0.47-0.60 ms
with Python's middle passes and its one full pass (1.3 s of the storm's CPU; the
measurements: CHANGELOG.md, 5 December 2026).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Middle passes between two considerations of a full one: Python's own default (they find
#: next to nothing: what survives a young pass is set aside).
FULL_AFTER_MIDDLE = 10
#: The fewest departures that call for a full pass, however few clients remain.
MIN_DEPARTURES = 1_000
#: Young passes between two counts of what is set aside (the backstop's check).
CHECK_EVERY = 100
#: Objects set aside per open connection that the backstop takes as the connection's own:
#: about 140 per connected WebSocket client, fewer for one still in its handshake, plus a
#: margin for the history and rooms that clients bring.
OBJECTS_PER_CLIENT = 200
#: The least unexplained growth that calls for a full pass.
MIN_GROWTH = 100_000


def tracked_objects() -> int:
    """Every object the collector tracks, set aside or not (O(objects): ~20 ms per million)."""
    return gc.get_freeze_count() + len(gc.get_objects())


class Collector:
    """The process's garbage-collection policy, from :meth:`take_over` to :meth:`release`.

    Usage::

        collector = Collector(connected=lambda: len(sockets))
        collector.take_over(young_threshold, server.open_connections)  # before serving
        collector.client_gone(remaining)       # as each client goes
        collector.release()                    # Python's own policy again
    """

    def __init__(
        self,
        connected: Callable[[], int] = lambda: 0,
        *,
        min_departures: int = MIN_DEPARTURES,
        check_every: int = CHECK_EVERY,
        objects_per_client: int = OBJECTS_PER_CLIENT,
        min_growth: int = MIN_GROWTH,
    ) -> None:
        self.connected = connected
        self.min_departures = min_departures
        self.check_every = check_every
        self.objects_per_client = objects_per_client
        self.min_growth = min_growth
        self.departures = 0  # since the last pass this started
        self.passes = 0  # full passes run
        self.start_up_objects = 0  # set aside by take_over()
        self._young_passes = 0
        self._kept = 0  # set aside after the last full pass
        self._kept_clients = 0  # connected then
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False  # a full pass is scheduled
        self._active = False

    def take_over(self, young_threshold: int, connections: Callable[[], int] | None = None) -> int:
        """Set aside the start-up's objects (modules, the app: they live as long as the
        process), collect the young generation every `young_threshold` new objects, and
        from now on set aside what survives each pass. `connections`, if given, replaces
        `connected` for the backstop: the server's open connections, those still in their
        handshake included (a storm's are mostly there). Returns how many objects were set
        aside."""
        if connections is not None:
            self.connected = connections
        gc.collect()
        gc.freeze()
        gc.set_threshold(young_threshold, gc.get_threshold()[1], FULL_AFTER_MIDDLE)
        self.start_up_objects = self._kept = gc.get_freeze_count()
        self._kept_clients = self.connected()
        if not self._active:
            gc.callbacks.append(self._after_pass)
            self._active = True
        logger.info(
            "Garbage collector: %d start-up objects set aside, thresholds %s "
            "(GC_YOUNG_THRESHOLD); full passes as clients go",
            self.start_up_objects,
            gc.get_threshold(),
        )
        return self.start_up_objects

    def release(self) -> None:
        """Stop setting survivors aside and put back what was (Python's own passes again)."""
        if self._active:
            gc.callbacks.remove(self._after_pass)
            self._active = False
        gc.unfreeze()

    def made_since_start_up(self) -> int:
        """Tracked objects, less the start-up's (O(objects))."""
        return tracked_objects() - self.start_up_objects

    def client_gone(self, connected: int) -> None:
        """A client left; `connected` are still there."""
        self.departures += 1
        if self.departures >= max(self.min_departures, connected // 4):
            self.departures = 0
            self._schedule("clients gone")

    def full_pass(self, reason: str = "asked") -> int:
        """Put back what is set aside, collect everything, set the survivors aside again.
        Returns how many objects were found unreachable."""
        self.passes += 1
        self._pending = False
        began = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        took_s = time.perf_counter() - began
        self._kept = gc.get_freeze_count()
        self._kept_clients = self.connected()
        logger.info(
            "Full garbage collection (%s): %d unreachable objects freed, %d kept, %.0f ms",
            reason,
            collected,
            self._kept,
            took_s * 1000,
        )
        return collected

    def _after_pass(self, phase: str, info: dict[str, Any]) -> None:
        # gc.callbacks: runs after each pass, Python's or full_pass()'s, in whichever thread
        # allocated; the GIL is held and the pass is over, so moving lists is safe.
        if phase != "stop":
            return
        gc.freeze()
        if self._loop is None:  # the first pass in the event loop's thread tells which it is
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        if info["generation"] == 2:
            return  # a full pass: nothing is left to check until the next young ones
        self._young_passes += 1
        if self._young_passes % self.check_every == 0 and self._unexplained_growth():
            self._schedule("growth no connection explains")

    def _unexplained_growth(self) -> bool:
        grown = gc.get_freeze_count() - self._kept
        explained = self.objects_per_client * (self.connected() - self._kept_clients)
        return grown - explained > max(self._kept // 4, self.min_growth)

    def _schedule(self, reason: str) -> None:
        """A full pass as soon as the event loop is free (a leaving client's own objects are
        freed first). Never within a pass: Python ignores a collection asked for there."""
        if self._pending:
            return
        # in a thread of its own (thread mode's workers) there is none: the loop seen last
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            return  # no loop yet: the next departure or check asks again
        self._pending = True
        self._loop.call_soon_threadsafe(self.full_pass, reason)
