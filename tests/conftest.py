"""Shared fixtures: scratch sites written into tmp_path, built through the real code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from publisher.build import build
from publisher.check import check
from publisher.config import load_config

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)

CONFIG = """\
title = { en = "Test Alliance", az = "Test Alyansı", ru = "Тестовый альянс" }
base_url = "https://news.example.org/"
tag_authority = "news.example.org,2024"
timezone = "Asia/Baku"
languages = ["en", "az", "ru"]
default_language = "en"

[newsletter]
from_address = "newsletter@news.example.org"
unsubscribe_url = "https://news.example.org/unsubscribe"
unsubscribe_mailto = "unsubscribe@news.example.org"
"""


def entry_text(title: str = "Police raid a party", type: str = "update", date: str = "2023-07-27T10:00:00+04:00",
               body: str = "Police raided a birthday party in Baku.", **fields) -> str:
    """Return the text of an entry file with the given front-matter fields."""
    lines = [f"title: {title!r}" if title is not None else "", f"type: {type}", f"date: {date}"]
    for key, value in fields.items():
        lines.append(f"{key}: {value}")
    front = "\n".join(line for line in lines if line)
    return f"---\n{front}\n---\n\n{body}\n"


@dataclass
class ScratchSite:
    """A site folder in tmp_path with helpers to write files and build it."""

    root: Path

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
        return path

    def entry(self, rel: str, **fields) -> Path:
        return self.write(f"content/{rel}", entry_text(**fields))

    @property
    def config(self):
        return load_config(self.root)

    @property
    def output(self) -> Path:
        return self.root / "output"

    def build(self, now: datetime = NOW):
        return build(self.root, now)

    def check(self, now: datetime = NOW):
        return check(self.root, now)

    def tree(self) -> dict[str, bytes]:
        """Return every output file as relative path -> bytes."""
        return {p.relative_to(self.output).as_posix(): p.read_bytes() for p in sorted(self.output.rglob("*")) if p.is_file()}

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run the real entry point (`python -m publisher`) in this site."""
        return subprocess.run([sys.executable, "-m", "publisher", *args], cwd=self.root, capture_output=True,
                              text=True, check=check, timeout=120)


@pytest.fixture
def site(tmp_path: Path) -> ScratchSite:
    """A scratch site with a valid config and no entries."""
    scratch = ScratchSite(tmp_path / "site")
    scratch.write("publisher.toml", CONFIG)
    return scratch
