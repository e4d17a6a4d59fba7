"""The Socket.IO server's clients: where they connect, what they may replay and resume, how
much the server queues for each, the heartbeat, and the events clients may send."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from shared.settings.fields import SEE_ABOVE, CommaList, comment


class ClientSettings(BaseModel):
    """What the server gives each client and what it takes from one."""

    SECTION: ClassVar[str] = "Socket.IO server and its clients"

    host: str = Field(
        "127.0.0.1",
        description="Interface the HTTP server listens on.",
        json_schema_extra=comment(
            "Interface and port of the HTTP server. honcho sets PORT (5000 for the first "
            "Procfile entry)."
        ),
    )
    port: int = Field(
        8000,
        ge=1,
        le=65535,
        description="HTTP port (honcho sets PORT).",
        json_schema_extra=SEE_ABOVE,
    )
    replay_window_s: float = Field(
        120.0,
        ge=0,
        le=86_400,
        description="How long emitted events stay replayable, seconds.",
        json_schema_extra=comment(
            "Replay on reconnect: emitted events stay replayable this many seconds, at most this "
            "many per stream (namespace + room), and at most this many bytes over all streams."
        ),
    )
    replay_max_events: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="Replayable events kept per stream.",
        json_schema_extra=SEE_ABOVE,
    )
    replay_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        le=4 * 1024**3,
        description="Replayable bytes kept in all.",
        json_schema_extra=SEE_ABOVE,
    )
    resume_max_bytes: int = Field(
        1024 * 1024,
        ge=0,
        le=1024**3,
        description="Bytes one resume request may replay.",
        json_schema_extra=comment(
            'What one resume (connect or join with "since") may replay, and what one connection '
            "may be replayed in all, bytes; a client that missed more is told to resync "
            "(recovered: false)."
        ),
    )
    resume_max_bytes_per_connection: int = Field(
        4 * 1024 * 1024,
        ge=0,
        le=4 * 1024**3,
        description="Bytes replayed to one connection in all.",
        json_schema_extra=SEE_ABOVE,
    )
    client_queue_max_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="A client's outgoing queue, in bytes: past this it is disconnected as too "
        "slow.",
        json_schema_extra=comment(
            "A client's outgoing queue in the server's memory (what it has not read yet), in "
            "bytes of encoded packets and in packets: past either, the client is told why "
            "(relay:overflow) and disconnected, and its connection's memory freed. Bytes must be "
            "above RESUME_MAX_BYTES."
        ),
    )
    client_queue_max_packets: int = Field(
        10_000,
        ge=10,
        le=10_000_000,
        description="A client's outgoing queue, in packets: past this it is disconnected.",
        json_schema_extra=SEE_ABOVE,
    )
    client_write_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A WebSocket client that takes no data this long has its connection aborted.",
        json_schema_extra=comment(
            "A WebSocket client that takes nothing (its socket buffers full) this long has its "
            "TCP connection aborted: what the kernel buffers for it is freed too."
        ),
    )
    # Whole seconds: engine.io tells the client its interval in whole seconds' worth of ms.
    client_ping_interval_s: int = Field(
        25,
        ge=1,
        le=3600,
        description="Seconds between the server's engine.io PINGs to each client (Socket.IO: 25).",
        json_schema_extra=comment(
            "The heartbeat to every client: a PING this often (seconds), and a client that has "
            "not answered one within the timeout is disconnected (Socket.IO's defaults: 25 and "
            "20)."
        ),
    )
    client_ping_timeout_s: int = Field(
        20,
        ge=1,
        le=3600,
        description="A client that leaves a PING unanswered this long is cut off (Socket.IO: 20).",
        json_schema_extra=SEE_ABOVE,
    )
    client_events: CommaList = Field(
        default_factory=lambda: ["item_removed"],
        description="Client events relayed to the sender's rooms, sender skipped.",
        json_schema_extra=comment(
            "Client events relayed to the sender's rooms (or to everyone if it joined none), "
            "sender skipped; anything else is answered with an error and dropped."
        ),
    )
    client_event_max_bytes: int = Field(
        16_384,
        ge=1,
        le=1_048_576,
        description="Largest client event payload, bytes.",
        json_schema_extra=comment(
            "Largest client event payload, bytes; allowed events per second and burst, per "
            "connection."
        ),
    )
    client_event_rate: float = Field(
        10.0,
        gt=0,
        le=10_000,
        description="Client events allowed per second, per connection.",
        json_schema_extra=SEE_ABOVE,
    )
    client_event_burst: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Client events allowed in a burst, per connection.",
        json_schema_extra=SEE_ABOVE,
    )
    client_message_max_bytes: int = Field(
        1_000_000,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest message a client may send, bytes (a WebSocket message, a "
        "long-polling POST).",
        json_schema_extra=comment(
            "Hostile connections (docs/security.md). The largest message a client may send, "
            "bytes: a WebSocket message past it closes the connection (1009) before it is "
            "read, a long-polling POST past it is refused (413). Keep it above "
            "CLIENT_EVENT_MAX_BYTES; engine.io's default."
        ),
    )
    client_header_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A connection that has not sent a whole request's headers this long after "
        "it opened (or began a request) is closed, seconds.",
        json_schema_extra=comment(
            "A connection that sends no complete request headers this many seconds after it "
            "opened, or after its request began (nothing at all, or a byte at a time), is "
            "closed: uvicorn alone keeps it for ever."
        ),
    )
    client_max_connections: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Open connections the server takes, past which a new one is closed at once; "
        "0: the open files limit less 256.",
        json_schema_extra=comment(
            "Open TCP connections the server keeps, all clients together: a new one past it is "
            "closed at once, before it is read. 0: the open files limit (raised to its hard "
            "limit at start) less 256 kept for everything else, so that the server never runs "
            "out of file descriptors."
        ),
    )
    client_connect_rate: float = Field(
        200.0,
        ge=0,
        le=1_000_000,
        description="New Socket.IO sessions allowed per second from one address; 0: no limit.",
        json_schema_extra=comment(
            "New Socket.IO sessions (engine.io handshakes) allowed per second from one client "
            "address, and in a burst; past them a handshake is refused (HTTP 429, or 403 for "
            "a WebSocket) and the client's helper retries later. 0 turns the limit off. Behind "
            "a proxy the address is the one uvicorn reads from X-Forwarded-For "
            "(uvicorn's FORWARDED_ALLOW_IPS: 127.0.0.1 unless set)."
        ),
    )
    client_connect_burst: int = Field(
        2000,
        ge=1,
        le=10_000_000,
        description="New Socket.IO sessions allowed in a burst from one address.",
        json_schema_extra=SEE_ABOVE,
    )
