"""One log format for every process (honcho prefixes the process name and time)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr as text (``LEVEL logger: message``) or one JSON object per line;
    uvicorn's loggers go the same way."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level"}))
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # botocore at DEBUG prints every HTTP request; keep it at INFO unless asked for.
    logging.getLogger("botocore").setLevel(max(logging.getLevelName(level), logging.INFO))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: a line a request
