"""Cluster mode (REDIS_URL): Redis Streams as the servers' shared bus and replay history.

A worker hands a batch to one live server; that server appends it to Redis with one script
call, which per message de-duplicates by MessageId across the cluster, gives each target
stream (namespace + room) its next offset, appends the message once to the shared *feed*
and indexes it in each target stream's *history*, all atomically; then the server confirms.
Every server reads the feed (``XREAD``) and emits each event to its own clients, so every
replica emits every event with the same offset, in the same order. A client that resumes on
any server gets what it missed from the history. Nothing here is a protocol of our own: it is
Redis's streams, sorted sets and scripts, the way Socket.IO's Redis Streams adapter and
Centrifugo use them.

Its keys, and how streams and feed IDs are written in them: server/history/redis_keys.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from server.history.base import CatchUp, HistoryUnavailable, OnGap
from server.history.reasons import (
    FEED_BEHIND,
    HISTORY_UNAVAILABLE,
    SINCE_NOT_AN_OBJECT,
    ahead_of_stream,
    encoded_for_clients,
    offset_error,
    too_big,
)
from server.history.redis_keys import FeedId, format_id, parse_id, parse_stream_key, stream_key
from server.history.replay import ReplayBuffer, Stream
from server.history.state import state_room
from server.payload import payload_head, payload_in_room
from shared import counters as c
from shared.counters import Counters
from shared.settings import Settings
from shared.wire import Delivery

logger = logging.getLogger(__name__)

#: Feed entries taken per XREAD (a batch is emitted without yielding the loop: kept small), and
#: how long one blocks (ms) before looking at the stop flag.
_READ_COUNT = 200
_READ_BLOCK_MS = 1000
#: How long a resume waits for this server's feed reader to reach what the history showed.
_CATCH_UP_TIMEOUT_S = 5.0
#: Index entries per step while a resume walks back (inside the script).
_WALK = 100
#: An idle stream's position is kept REDIS_STREAM_TTL_S; the highest offset handed out is
#: marked once per this many seconds, so that a stream whose position expired starts again
#: above every offset it can have had (see lua/positions.lua).
MARK_S = 3600.0
#: What each target stream of a message adds to the history's bytes, beside its key's length:
#: its index entry (Redis's MEMORY USAGE gives a sorted set of one member ~104 bytes).
ROOM_BYTES = 100


def _script(name: str) -> str:
    """A Lua script of lua/, after the position helpers every script shares (the files say
    what each does and takes)."""
    lua = resources.files("server.history") / "lua"
    return (lua / "positions.lua").read_text() + (lua / f"{name}.lua").read_text()


_APPEND = _script("append")
_SNAPSHOT = _script("snapshot")
_STATE = _script("state")


#: Takes one event of the shared feed, for this server's clients: (stream, offset, event,
#: payload, size, sent_ms). RedisHistory's (server/history/redis_history.py).
FeedEvent = Callable[[Stream, int, str, orjson.Fragment, int, int | None], Awaitable[None]]


class RedisBus:
    """This server's side of the shared bus: appends batches, reads the feed, serves resumes.

    Usage, in the running event loop::

        bus = RedisBus(settings, replay=replay, counters=counters)
        bus.start(take, on_gap)              # the feed reader: every event to take()
        ids = await bus.append(deliveries, dedup_ttl_s)  # MessageIds safe to delete
        catch = await bus.catch_up(stream, since, budget)  # a resume's share of the history
        await bus.close()

    :attr:`healthy` says whether the last Redis call worked: the hand-off answers workers'
    pings only while it does, so that with Redis down workers stop taking from SQS.
    """

    def __init__(self, settings: Settings, *, replay: ReplayBuffer, counters: Counters) -> None:
        assert settings.redis_url is not None
        self._settings = settings
        self._replay = replay
        self._counters = counters
        self._prefix = f"{settings.redis_prefix}:"
        # A blocked XREAD holds its connection for _READ_BLOCK_MS: the socket timeout is above
        # it, so that a Redis that stopped answering is noticed within a few seconds.
        self._redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=_READ_BLOCK_MS / 1000 + 2,
            socket_connect_timeout=2,
        )
        self._append = self._redis.register_script(_APPEND)
        self._snapshot = self._redis.register_script(_SNAPSHOT)
        self._state = self._redis.register_script(_STATE)
        self._state_rooms = tuple(settings.state_rooms)
        self._backoff = ExponentialBackoff(cap=1.0, base=0.05)
        self._moved = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.position: FeedId | None = None  # the last feed entry handled
        self._number: int | None = None  # and its number (``feed:n``)
        self.healthy = False

    # --- appending ------------------------------------------------------------------------------
    async def append(
        self, deliveries: list[Delivery], dedup_ttl_s: float
    ) -> tuple[list[str], list[str]]:
        """Append each delivery to its streams; return (appended, duplicate) MessageIds, both
        safe to delete. A message that cannot be encoded is in neither (SQS redelivers it and
        its redrive policy dead-letters it). HistoryUnavailable if Redis cannot be reached."""
        settings = self._settings
        history = settings.replay_max_bytes > 0 and settings.replay_window_s > 0
        args: list[Any] = [
            self._prefix,
            secrets.token_hex(6),
            max(1, int(dedup_ttl_s + 0.999)),
            settings.redis_feed_max_events,
            settings.replay_max_events if history else 0,
            int(settings.replay_window_s * 1000),
            settings.replay_max_bytes,
            ROOM_BYTES,
            *self._positions(),
            settings.state_max_keys,
            settings.state_max_bytes,
        ]
        ids = []
        emitted_ms = int(time.time() * 1000)
        failed_groups: set[str] = set()  # FIFO: a group's later messages wait for its failed one
        for delivery in deliveries:
            envelope = delivery.envelope
            if delivery.group is not None and delivery.group in failed_groups:
                continue
            encoded = encoded_for_clients(delivery, self._counters)
            if encoded is None:
                if delivery.group is not None:
                    failed_groups.add(delivery.group)
                continue
            head = payload_head(delivery, encoded[0], emitted_ms)
            rooms = envelope.rooms
            args += [delivery.message_id, len(rooms), envelope.event, head, delivery.sent_ms or ""]
            version = "" if envelope.version is None else envelope.version
            args += [envelope.key or "", version]
            for room in rooms:
                state = "1" if state_room(self._state_rooms, room) else "0"
                args += [stream_key((envelope.namespace, room)), state]
            ids.append(delivery.message_id)
        if not ids:
            return [], []
        try:
            reply = await self._append(args=args)
        except RedisError as exc:
            self._failed(exc, "append")
            raise HistoryUnavailable(f"Redis: {exc}") from None
        self._adopt(reply[0])
        flags = [int(flag) for flag in reply[1:]]
        appended = [i for i, flag in zip(ids, flags, strict=True) if flag == 1]
        duplicates = [i for i, flag in zip(ids, flags, strict=True) if flag == 0]
        if stale := [i for i, flag in zip(ids, flags, strict=True) if flag == 2]:
            self._counters.inc(c.STATE_STALE_DROPPED, len(stale))
            appended += stale  # taken: safe to delete, as nothing is left to emit
        return appended, duplicates

    async def latest(self, stream: Stream, budget: int) -> CatchUp:
        """A state room's latest events (the newest within `budget` bytes) and its position,
        once this server's feed reader has handled the feed as far as they were read."""
        try:
            reply = await self._state(
                args=[
                    self._prefix,
                    secrets.token_hex(6),
                    stream_key(stream),
                    orjson.dumps(stream[1]),
                    *self._positions(),
                ]
            )
        except RedisError as exc:
            self._failed(exc, "state")
            return CatchUp(self._replay.epoch, None, failure=HISTORY_UNAVAILABLE, retry=True)
        epoch = self._adopt(reply[0])
        last, tip = int(reply[1]), parse_id(reply[2])
        rows = reply[3:]
        catch = CatchUp(epoch, last)
        for n in range(len(rows) - 3, -1, -3):  # newest first, while they fit
            if catch.size + len(rows[n + 2]) > budget:
                break
            catch.entries.append((rows[n + 1].decode(), orjson.Fragment(rows[n + 2])))
            catch.size += len(rows[n + 2])
        catch.entries.reverse()
        if not await self._reached(tip):
            return CatchUp(epoch, None, failure=FEED_BEHIND, retry=True)
        return catch

    # --- resuming -------------------------------------------------------------------------------
    async def catch_up(self, stream: Stream, since: Any, budget: int) -> CatchUp:
        """A resume's share of the shared history: the events after ``since`` that this
        server's feed reader handled before it (at most ``budget`` bytes), and the offset from
        which the local buffer continues. ``since`` None: no events, just the position.

        When Redis cannot be asked, or this server's feed reader does not reach what the
        history showed in time, nothing is known to be lost: the answer is ``retry`` (the
        client resumes again later), unless ``since`` itself cannot be resumed from."""
        after = -1
        failure = None
        if since is not None and not isinstance(since, dict):
            failure = SINCE_NOT_AN_OBJECT
        elif since is not None:
            after, failure = self._after(since)
        try:
            reply = await self._snapshot(
                args=[
                    self._prefix,
                    secrets.token_hex(6),
                    stream_key(stream),
                    after,
                    budget,
                    _WALK,
                    orjson.dumps(stream[1]),
                    int(self._settings.replay_window_s * 1000),
                    *self._positions(),
                ]
            )
        except RedisError as exc:
            self._failed(exc, "resume")
            retry = failure is None  # a malformed `since` is refused as it is, Redis or not
            return CatchUp(
                self._replay.epoch, None, failure=failure or HISTORY_UNAVAILABLE, retry=retry
            )
        epoch = self._adopt(reply[0])
        if since is not None and failure is None and since.get("epoch") != epoch:
            # Another epoch's offsets mean nothing now: the history was lost (Redis restarted
            # without its data). What this epoch holds may still be sent; the client resyncs.
            lost = await self.catch_up(stream, {"epoch": epoch, "offset": 0}, budget)
            if lost.retry:
                return lost  # asked again, it says what was lost and sends what is held
            lost.failure = (
                f"epoch {since.get('epoch')!r:.40} is not the history's ({epoch}): it was lost "
                "since"
            )
            return lost
        last, tip, status = int(reply[1]), parse_id(reply[2]), reply[3].decode()
        catch = CatchUp(epoch, last, failure=failure)
        if status == "ahead":
            catch.failure = failure or ahead_of_stream(after, last)
        elif status == "gone":
            catch.failure = failure or f"offset {after} is out of the replay window"
        elif status == "big":
            catch.refused = True
            catch.failure = failure or too_big()
        else:
            rows = reply[4:]
            for n in range(len(rows) - 3, -1, -3):  # newest first in the reply
                catch.entries.append((rows[n + 1].decode(), orjson.Fragment(rows[n + 2])))
                catch.size += len(rows[n + 2])
        if catch.failure is not None and status != "ok":
            catch.entries, catch.size = [], 0
        if not await self._reached(tip):
            # What was found lost stays lost; otherwise the client asks again.
            final = catch.failure if status != "ok" or failure is not None else None
            return CatchUp(epoch, None, failure=final or FEED_BEHIND, retry=final is None)
        return catch

    async def recent(
        self, stream: Stream, count: int, budget: int, *, until: int | None = None
    ) -> CatchUp:
        """The stream's last `count` events the shared history holds (the newest within
        `budget` bytes), oldest first, and its position, in one view of Redis."""
        window = int(self._settings.replay_window_s * 1000)
        try:
            args: list[str | int | bytes] = [
                self._prefix,
                secrets.token_hex(6),
                stream_key(stream),
                -1,
                budget,
                _WALK,
            ]
            rest: list[str | int | bytes] = [orjson.dumps(stream[1]), window, *self._positions()]
            last = int((await self._snapshot(args=args + rest))[1])
            last = last if until is None else min(last, until)
            args[3] = max(0, last - count) if count > 0 else last
            args[4] = 2**62  # the byte budget is applied below, newest first
            reply = await self._snapshot(args=args + rest)
        except RedisError as exc:
            self._failed(exc, "read")
            raise HistoryUnavailable(f"Redis: {exc}") from None
        epoch = self._adopt(reply[0])
        catch = CatchUp(epoch, int(reply[1]))
        rows = reply[4:]
        for n in range(0, len(rows), 3):  # newest first in the reply
            if until is not None and int(rows[n]) > until:
                continue
            if len(catch.entries) >= count or catch.size + len(rows[n + 2]) > budget:
                break
            catch.entries.append((rows[n + 1].decode(), orjson.Fragment(rows[n + 2])))
            catch.size += len(rows[n + 2])
        catch.entries.reverse()
        return catch

    def _positions(self) -> tuple[int, int]:
        """The scripts' position TTL and mark bucket, in ms: a position outlives its history."""
        settings = self._settings
        return int(max(settings.redis_stream_ttl_s, settings.replay_window_s) * 1000), int(
            MARK_S * 1000
        )

    def _after(self, since: dict[str, Any]) -> tuple[int, str | None]:
        offset = since.get("offset")
        failure = offset_error(offset)
        if failure is not None or not isinstance(offset, int):
            return -1, failure
        return offset, None

    async def _reached(self, tip: FeedId) -> bool:
        """Wait until the feed reader has handled the feed up to ``tip``."""
        async with self._moved:
            try:
                await asyncio.wait_for(
                    self._moved.wait_for(lambda: (self.position or (0, 0)) >= tip),
                    _CATCH_UP_TIMEOUT_S,
                )
            except TimeoutError:
                return False
        return True

    # --- the feed reader -------------------------------------------------------------------------
    def start(self, take: FeedEvent, on_gap: OnGap) -> None:
        self._task = asyncio.create_task(self._read(take, on_gap), name="redis-feed")

    async def _read(self, take: FeedEvent, on_gap: OnGap) -> None:
        feed = f"{self._prefix}feed"
        failures = 0
        rejoin = True
        while not self._closing:
            try:
                if rejoin:
                    await self._rejoin(feed)
                    rejoin = False
                assert self.position is not None
                reply: Any = await self._redis.xread(
                    {feed: format_id(self.position)}, count=_READ_COUNT, block=_READ_BLOCK_MS
                )
                self._working()
                failures = 0
                for _name, rows in reply or ():
                    for entry_id, fields in rows:
                        await self._handle(entry_id, fields, take, on_gap)
                async with self._moved:
                    self._moved.notify_all()
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                self._failed(exc, "feed")
                rejoin = True
                failures += 1
                await asyncio.sleep(self._backoff.compute(failures))  # a retry's back-off

    async def _rejoin(self, feed: str) -> None:
        """(Re)connect to the feed: the first time at its tip, after an outage where this
        server left off (:meth:`_handle` notices if the feed was trimmed past it meanwhile)."""
        candidate = secrets.token_hex(6)
        epoch: Any = await self._redis.set(f"{self._prefix}epoch", candidate, nx=True, get=True)
        self._adopt(epoch or candidate)  # None: ours was set
        if self.position is None:
            try:
                info = await self._redis.xinfo_stream(feed)
            except RedisError as exc:
                if "no such key" not in str(exc).lower():
                    raise
                info = {}
            self.position = parse_id(info.get("last-generated-id") or "0-0")
            logger.info(
                "Reading the shared feed from %s (epoch %s)",
                format_id(self.position),
                self._replay.epoch,
            )
        self._working()
        async with self._moved:
            self._moved.notify_all()

    async def _handle(
        self,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        take: FeedEvent,
        on_gap: OnGap,
    ) -> None:
        try:
            number = int(fields[b"n"])
            epoch = fields[b"ep"]
            event = fields[b"e"].decode()
            head = fields[b"h"]
            sent = fields.get(b"s")
            sent_ms = int(sent) if sent else None
            targets = orjson.loads(fields[b"r"])
            streams = [
                (parse_stream_key(key), int(offset))
                for key, offset in zip(targets[::2], targets[1::2], strict=True)
            ]
        except (KeyError, ValueError, TypeError, UnicodeDecodeError):
            logger.warning("Skipping a malformed feed entry %r", entry_id)
        else:
            self._adopt(epoch)
            if self._number is not None and number != self._number + 1:
                self._counters.inc(c.FEED_GAPS)
                logger.warning(
                    "This server missed %d message(s) of the shared feed (it was trimmed while "
                    "this server was cut off): its clients are sent away to resume from the "
                    "history",
                    number - self._number - 1,
                )
                on_gap()
            self._number = number
            for stream, offset in streams:
                payload = payload_in_room(head, stream[1], offset, epoch)
                await take(stream, offset, event, orjson.Fragment(payload), len(payload), sent_ms)
        self.position = parse_id(entry_id)

    # --- health and epoch -------------------------------------------------------------------------
    def _adopt(self, epoch: bytes | str) -> str:
        """The history's epoch, as Redis holds it; a new one (Redis lost its data) empties the
        local buffer, whose offsets belonged to the old one."""
        text = epoch.decode() if isinstance(epoch, bytes) else epoch
        if text != self._replay.epoch:
            if self.position is not None:
                logger.warning("The history's epoch is now %s: Redis lost its data", text)
            self._replay.reset(text)
            self._number = None
        return text

    def _working(self) -> None:
        if not self.healthy:
            logger.info("Redis is reachable: confirming batches")
        self.healthy = True

    def _failed(self, exc: Exception, what: str) -> None:
        self._counters.inc(c.REDIS_ERRORS)
        if self.healthy or what != "feed":
            logger.warning(
                "Redis %s failed (%s): not confirming batches until it answers again", what, exc
            )
        self.healthy = False

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
