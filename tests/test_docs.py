"""The README documents every command and every config key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from publisher.cli import make_parser
from publisher.config import SECTIONS, Config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def config_keys() -> list[str]:
    keys = [f.name for f in dataclasses.fields(Config) if f.name != "root" and f.name not in SECTIONS]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def test_readme_opens_with_exactly_two_commands():
    blocks = re.findall(r"^    (\S.*)$", README.split("\n## ")[0], re.M)
    assert blocks == ["bash .ci/setup && .venv/bin/publisher build", "bash .ci/run"]


def test_every_config_key_is_documented():
    missing = [key for key in config_keys() if f"| `{key}` |" not in README]
    assert missing == []


def test_every_command_is_documented():
    parser = make_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in action.choices if f"`publisher {name}" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pytest" in ci and "bash .ci/run" in README
