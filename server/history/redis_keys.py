"""Cluster mode's Redis keys, and how a stream and a feed entry's ID are written in them.

Keys (``REDIS_PREFIX``, then a colon):

============================  ==============================================================
``epoch``                     the history's epoch, made once (``SET NX``): it changes only
                              when Redis lost its data, and then resuming says so
``seen:<MessageId>``          appended already (expires after the de-duplication window)
``offset:<stream>``           the stream's last offset (``INCR``), its *position*; it
                              expires REDIS_STREAM_TTL_S after the stream's last event,
                              and the stream starts again above ``offset:marks``' floor
``feed``                      every message, once, for every server, numbered from
                              ``feed:n`` so that a reader sees what it missed. With a
                              history it *is* the history's store, trimmed by Redis in the
                              append script by count (REDIS_FEED_MAX_EVENTS), bytes
                              (REPLAY_MAX_BYTES, held in ``feed:bytes``) and age
                              (REPLAY_WINDOW_S); without one, by count
``history:<stream>``          the stream's index into the feed: a sorted set, offset ->
                              feed ID, trimmed by count (REPLAY_MAX_EVENTS) and with the
                              feed; empty, Redis deletes it
``control``                   the servers' control bus: a stream of ``{k: kind, b: JSON
                              body}`` every server reads from its tip at start
                              (server/control/redis_bus.py), capped near 10,000 entries
``revoked:<user>``            a backend's disconnect command's time (epoch seconds) for the
                              user: older tokens are refused until it expires,
                              DISCONNECT_REVOKE_S after the command
============================  ==============================================================

``<stream>`` is ``<len(namespace)>:<namespace><room>`` (room empty: the room-less stream).
A resume compares the feed IDs its history names with this server's feed position, which is
how it tells which events this server's feed reader has already handled
(:meth:`server.history.cluster.RedisBus.catch_up`).
"""

from __future__ import annotations

from server.history.replay import Stream

FeedId = tuple[int, int]


def stream_key(stream: Stream) -> str:
    """The key part naming a stream; unambiguous whatever the names hold."""
    namespace, room = stream
    return f"{len(namespace)}:{namespace}{room or ''}"


def parse_stream_key(key: str) -> Stream:
    length, _, rest = key.partition(":")
    size = int(length)
    return rest[:size], rest[size:] or None


def parse_id(value: bytes | str) -> FeedId:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(value: FeedId) -> str:
    return f"{value[0]}-{value[1]}"
