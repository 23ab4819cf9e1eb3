"""Where publisher's own templates and message catalogs are, for modules that must not import Jinja."""

from pathlib import Path

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
ISSUES_LEDGER = "issues-sent.jsonl"  # in the state folder: the issues that went out
