"""The start of every process: `--help`, settings (exit 2 naming the bad variable), logging."""

from __future__ import annotations

import argparse
import sys

from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings


def start(prog: str, description: str, argv: list[str] | None = None) -> Settings | None:
    """Parse the (option-less) command line, load the settings and configure logging.

    Returns None after printing ``<prog>: invalid setting: ...`` to stderr when a setting is
    wrong; the caller exits with status 2.
    """
    argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    configure_logging(settings.log_level, settings.log_format)
    return settings
