"""One typed settings object for every process, read from the environment and `.env`.

Build it once in a `__main__` with :func:`load_settings` and pass it down; nothing reads the
environment at import time. One module per concern holds its fields, their own checks and
their derived values: `sqs.py`, `handoff.py`, `cluster.py`, `clients.py`, `auth.py`,
`process.py`; `checks.py` holds every check between two settings; `model.py` composes them
into the one flat `Settings`. Every field's description (or longer comment) is its line in
`.env.example`, which `python -m shared.settings` writes (`example.py`).
"""

from __future__ import annotations

from shared.settings.auth import RELAY_AUDIENCE
from shared.settings.model import Settings, SettingsError, load_settings
from shared.settings.sqs import EMBEDDED_QUEUE_URL

__all__ = ["EMBEDDED_QUEUE_URL", "RELAY_AUDIENCE", "Settings", "SettingsError", "load_settings"]
