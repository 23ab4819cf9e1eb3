"""Logging for the long-running commands (the scheduler, and the builds it starts): to stderr, with times."""

from __future__ import annotations

import logging
import sys


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr with timestamps (systemd and containers collect it); quiet APScheduler's routine."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("publisher").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # every raw event, even filtered out
