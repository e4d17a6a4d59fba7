"""One log format for every process (honcho prefixes the process name and time)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr in the shared format; uvicorn's loggers use it too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # botocore at DEBUG prints every HTTP request; keep it at INFO unless asked for.
    logging.getLogger("botocore").setLevel(max(logging.getLevelName(level), logging.INFO))
