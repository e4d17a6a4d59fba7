"""The relay's own event names, as its server sends them (the server's side is
shared/envelope.py in the relay's repository; a test there keeps the two equal). Written
here so that this package needs nothing of the relay installed."""

from __future__ import annotations

#: Events the relay itself sends to clients start with this.
RESERVED_PREFIX = "relay:"
#: The connect answer to a client that resumes: its room-less stream's position and what
#: came of the resume.
RECOVERY_EVENT = f"{RESERVED_PREFIX}recovery"
#: The key that marks a resume answer as "try again" (the history could not be read; nothing
#: is known to be lost): the helpers resume that stream again from their own position.
RESUME_RETRY = "retry"
#: Sent just before the server disconnects a client whose token expired.
EXPIRED_EVENT = f"{RESERVED_PREFIX}expired"
#: Sent just before the server disconnects a client too slow to read what it is sent.
OVERFLOW_EVENT = f"{RESERVED_PREFIX}overflow"
#: Sent just before the server disconnects a client whose user the app's backend disconnected
#: (logout, ban): ``{"reason": ...}``; the helpers then stop for good.
DISCONNECTED_EVENT = f"{RESERVED_PREFIX}disconnected"
#: Who joined and who left a presence room the client is in:
#: ``{"room", "joined": [{"user", "info"}], "left": [user], "more"?}``. No offset: not a stream.
PRESENCE_EVENT = f"{RESERVED_PREFIX}presence"
