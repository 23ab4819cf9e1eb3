"""`publisher check`: every problem in config and content, errors and warnings, nothing written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from publisher.build import load_site
from publisher.config import load_config
from publisher.problems import EditorError, Problem, sort_key
from publisher.templates import Templates


def check(root: Path, now: datetime) -> list[Problem]:
    """Return every problem of the site at `root`, sorted; never raise for editor mistakes."""
    try:
        config = load_config(root)
        load_site(config, Templates(config), now)
    except EditorError as error:
        return list(error.problems)
    return sorted([], key=sort_key)
