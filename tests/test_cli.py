"""The command line, run through the real entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import NOW, entry_text
from publisher.cli import make_parser


def commands() -> list[str]:
    parser = make_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(action.choices)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "publisher"
    assert script.is_file() or shutil.which("publisher")


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help(site, command):
    result = site.cli(command, "--help")
    assert result.returncode == 0
    assert "usage: publisher " + command in result.stdout
    assert len(result.stdout.splitlines()) > 3


def test_main_help_lists_every_command(site):
    result = site.cli("--help")
    assert result.returncode == 0
    for command in commands():
        assert command in result.stdout


def test_build_and_check_succeed_on_a_good_site(site):
    site.entry("a.md")
    result = site.cli("build", "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    assert "built" in result.stderr and (site.output / "en/2023/07/a/index.html").is_file()
    result = site.cli("check", "--now", NOW.isoformat())
    assert result.returncode == 0 and "ok" in result.stderr


def test_a_clean_check_writes_nothing_not_even_a_cache(site):
    site.entry("a.md", summary="'A summary.'")
    result = site.cli("check", "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in site.root.iterdir()) == ["content", "publisher.toml"]


def test_check_reports_sorted_problems_and_a_count(site):
    site.write("content/b.md", entry_text(type="nope"))
    site.write("content/a.md", entry_text(date="2017-13-01"))
    result = site.cli("check")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "content/a.md:4: 'date': cannot read '2017-13-01' as a date; use ISO 8601 such as 2017-09-25T10:00:00+04:00, in the years 1900 to 2999",
        "content/b.md:3: unknown type 'nope' (use update, campaign or alert)",
        "2 errors",
    ]
    assert sorted(p.name for p in site.root.iterdir()) == ["content", "publisher.toml"], "check must write nothing"


def test_build_with_errors_writes_nothing_and_shows_no_traceback(site):
    site.entry("a.md")
    site.cli("build", "--now", NOW.isoformat(), check=True)
    before = {p: p.read_bytes() for p in site.output.rglob("*") if p.is_file()}
    site.write("content/b.md", "---\ntitle: [\n---\n")
    result = site.cli("build", "--now", NOW.isoformat())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in site.output.rglob("*") if p.is_file()} == before


def test_bad_now_is_a_usage_error(site):
    result = site.cli("build", "--now", "yesterday")
    assert result.returncode == 2 and "cannot read 'yesterday'" in result.stderr


def test_missing_config_is_reported(tmp_path):
    result = subprocess.run([sys.executable, "-m", "publisher", "check"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("publisher.toml:1: no publisher.toml here")


@pytest.mark.parametrize("kind", ["update", "campaign", "alert"])
def test_new_writes_a_draft_skeleton(site, kind):
    result = site.cli("new", kind, "Police raid a party in Baku", "--now", "2026-11-22T08:00:00Z")
    assert result.returncode == 0, result.stderr
    rel = result.stdout.strip()
    assert rel == "content/2026/police-raid-a-party-in-baku.md"
    front = yaml.safe_load((site.root / rel).read_text().split("---")[1])
    assert front["draft"] is True and front["type"] == kind
    assert front["id"] == "tag:news.example.org,2026-11-22:en/police-raid-a-party-in-baku"
    if kind == "alert":
        assert set(front["action"]) == {"label", "url", "deadline", "targets", "asks"}


def test_new_translation_and_no_overwrite(site):
    first = site.cli("new", "update", "Polis Bakıda basqın edib", "--lang", "az", "--now", "2026-11-22T08:00:00Z")
    assert first.stdout.strip() == "content/2026/polis-bakida-basqin-edib.az.md"
    path = site.root / first.stdout.strip()
    path.write_text(path.read_text() + "My words.\n")
    again = site.cli("new", "update", "Polis Bakıda basqın edib", "--lang", "az", "--now", "2026-11-22T08:00:00Z")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert path.read_text().endswith("My words.\n")


def test_a_new_entry_checks_clean_once_filled_in(site):
    rel = site.cli("new", "update", "Погром в Баку", "--lang", "ru", "--now", "2026-11-22T08:00:00Z").stdout.strip()
    assert rel == "content/2026/pogrom-v-baku.ru.md"
    assert site.cli("check", "--now", NOW.isoformat()).returncode == 0


def test_an_unfinished_draft_warns_but_does_not_block(site):
    site.entry("published.md")
    rel = site.cli("new", "alert", "Write now", "--now", "2026-11-22T08:00:00Z").stdout.strip()
    result = site.cli("check", "--now", NOW.isoformat())
    assert result.returncode == 0
    line = (site.root / rel).read_text().splitlines().index("action:") + 1
    assert f"{rel}:{line}: warning: draft left out: 'action' needs a 'label', the words on its button" in result.stderr
    assert site.cli("check", "--strict", "--now", NOW.isoformat()).returncode == 1
    assert site.cli("build", "--now", NOW.isoformat()).returncode == 0


def test_python_dash_m_works(site):
    result = subprocess.run([sys.executable, "-m", "publisher", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("publisher ")


def test_build_holds_only_the_last_site_it_loaded(site):
    # The command line keeps a build's site for the process's exit to drop, not free it
    # object by object; called again in the same process, it must not pile sites up.
    from publisher import cli

    site.entry("a.md")
    for _ in range(2):
        assert cli.main(["build", "--site", str(site.root), "--now", NOW.isoformat()]) == 0
    assert len(cli._HELD) == 1
    held_site = cli._HELD[0][0]
    assert [entry.slug for entry in held_site.entries] == ["a"]
