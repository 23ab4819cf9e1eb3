"""Warm builds: only what changed is rendered and rewritten, and the tree always equals a cold build's."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from PIL import Image

from conftest import NOW, ScratchSite, entry_text
from publisher import output
from test_render_cache import fresh_copy

ACTION = "{label: Sign, url: 'https://example.org/act', deadline: 2026-12-20}"


@pytest.fixture
def busy_site(site: ScratchSite) -> ScratchSite:
    """Entries of every kind that makes pages depend on each other or on the clock."""
    site.write("content/images/pic.png", b"")
    Image.new("RGB", (40, 20), (10, 20, 30)).save(site.root / "content/images/pic.png")
    site.entry("2026/raid.md", title="Raid", date="2026-11-10T10:00:00+04:00", key="raid", tags="[police, baku]",
               body="A raid.\n\n![A room](/images/pic.png)\n\n## Details\n\nMore.[^1]\n\n[^1]: A note.")
    site.entry("2026/raid.az.md", title="Basqın", date="2026-11-10T11:00:00+04:00", key="raid", lang="az",
               body="Basqın.")
    site.entry("2026/alert.md", title="Urgent: detained", type="alert", date="2026-11-18T09:00:00+04:00",
               action=ACTION, expires="2026-11-25T00:00:00+04:00", tags="[police]", body="Write now.")
    site.entry("2026/campaign.md", title="Campaign", type="campaign", date="2026-11-03T09:00:00+04:00",
               action=ACTION, body="Join us.")
    site.entry("2026/later.md", title="Embargoed", date="2026-11-24T08:00:00+04:00", body="Not yet.")
    site.entry("2026/draft.md", title="Draft", draft="true", body="Unfinished.")
    for number in range(35):  # more than a listing page holds
        site.entry(f"2025/old-{number}.md", title=f"Old {number}", date=f"2025-03-{1 + number % 28:02d}T10:00:00+04:00",
                   tags="[archive]", body=f"Old entry {number}.")
    site.build()
    return site


def edit(site: ScratchSite, rel: str, **fields) -> None:
    site.write(f"content/{rel}", entry_text(**fields))


CHANGES = {
    "body edited": lambda s: edit(s, "2026/raid.az.md", title="Basqın", date="2026-11-10T11:00:00+04:00",
                                  key="raid", lang="az", body="Basqın, yenilənib."),
    "title edited": lambda s: edit(s, "2025/old-3.md", title="Old three", date="2025-03-04T10:00:00+04:00",
                                   tags="[archive]", body="Old entry 3."),
    "date moved": lambda s: edit(s, "2025/old-6.md", title="Old 6", date="2025-04-07T10:00:00+04:00",
                                 tags="[archive]", body="Old entry 6."),
    "entry updated": lambda s: edit(s, "2025/old-8.md", title="Old 8", date="2025-03-09T10:00:00+04:00",
                                    updated="2026-11-15T10:00:00+04:00", correction="A name was wrong.",
                                    tags="[archive]", body="Old entry 8."),
    "tag added": lambda s: edit(s, "2025/old-4.md", title="Old 4", date="2025-03-05T10:00:00+04:00",
                                tags="[archive, courts]", body="Old entry 4."),
    "entry added": lambda s: s.entry("2026/new.md", title="New", date="2026-11-20T10:00:00+04:00", tags="[baku]",
                                     body="New."),
    "entry deleted": lambda s: (s.root / "content/2025/old-0.md").unlink(),
    "entry renamed": lambda s: (s.root / "content/2025/old-1.md").rename(s.root / "content/2025/old-one.md"),
    "translation added": lambda s: s.entry("2026/raid.ru.md", title="Рейд", date="2026-11-10T12:00:00+04:00",
                                           key="raid", lang="ru", body="Рейд."),
    "entry retracted": lambda s: edit(s, "2025/old-5.md", title="Old 5", date="2025-03-06T10:00:00+04:00",
                                      retracted="{date: 2026-11-01T10:00:00+04:00, reason: Wrong facts}",
                                      body="Old entry 5."),
    "image replaced": lambda s: Image.new("RGB", (64, 48), (1, 2, 3)).save(s.root / "content/images/pic.png"),
    "config changed": lambda s: s.write("publisher.toml", (s.root / "publisher.toml").read_text().replace(
        "Test Alliance", "Renamed Alliance")),
    "template changed": lambda s: s.write("templates/retraction.html", "<p>Withdrawn.</p>\n"),
    "draft published": lambda s: edit(s, "2026/draft.md", title="Draft", date="2026-11-19T10:00:00+04:00",
                                      body="Finished."),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_warm_build_after_a_change_equals_a_cold_build(busy_site, tmp_path, change):
    CHANGES[change](busy_site)
    busy_site.build()
    assert busy_site.tree() == fresh_copy(busy_site, tmp_path, "cold").tree()


@pytest.mark.parametrize("later", [timedelta(hours=1), timedelta(days=2), timedelta(days=3, hours=1),
                                   timedelta(days=9), timedelta(days=-5)], ids=str)
def test_a_warm_build_as_the_clock_moves_equals_a_cold_build(busy_site, tmp_path, later):
    """An embargo lifts (day 2), the alert's action expires (day 3), a week's issue falls due; or the clock goes back."""
    busy_site.build(NOW + later)
    cold = fresh_copy(busy_site, tmp_path, "cold")
    cold.build(NOW + later)
    assert busy_site.tree() == cold.tree()


def identities(site: ScratchSite) -> dict[str, tuple[int, int]]:
    return {p.relative_to(site.output).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in site.output.rglob("*") if p.is_file()}


def test_a_warm_build_with_nothing_changed_writes_nothing(busy_site):
    before, folder = identities(busy_site), busy_site.output.stat().st_ino
    busy_site.build()
    assert identities(busy_site) == before and busy_site.output.stat().st_ino == folder


def test_an_edit_rewrites_only_the_files_it_changes(busy_site):
    before = identities(busy_site)
    edit(busy_site, "2025/old-7.md", title="Old 7", date="2025-03-08T10:00:00+04:00", tags="[archive]",
         body="Old entry 7, corrected.")
    busy_site.build()
    after = identities(busy_site)
    rewritten = {path for path in after if after[path] != before.get(path)}
    assert "en/2025/03/old-7/index.html" in rewritten
    assert "sitemap.xml" not in rewritten  # the entry's date did not change, so neither did the sitemap
    assert len(rewritten) < 15, sorted(rewritten)
    assert set(after) == set(before)


def test_a_crash_after_the_commit_is_finished_by_the_next_build(busy_site, tmp_path, monkeypatch):
    before = busy_site.tree()
    edit(busy_site, "2025/old-8.md", title="Old 8, renamed", date="2025-03-09T10:00:00+04:00", body="Old entry 8.")

    def crash(out_dir, journal):
        raise KeyboardInterrupt("killed while moving files in")

    monkeypatch.setattr(output, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        busy_site.build()
    assert busy_site.tree() == before  # committed, but nothing moved yet: the old tree, whole
    monkeypatch.undo()
    busy_site.build(NOW)
    assert busy_site.tree() == fresh_copy(busy_site, tmp_path, "cold").tree()


def test_a_failure_before_the_commit_leaves_the_old_tree(busy_site, monkeypatch):
    before = busy_site.tree()
    edit(busy_site, "2025/old-9.md", title="Old 9, renamed", date="2025-03-10T10:00:00+04:00", body="Old entry 9.")
    monkeypatch.setattr(output, "_commit", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        busy_site.build()
    assert busy_site.tree() == before
    assert not list(busy_site.root.glob(".output-*"))


@pytest.mark.parametrize("how", ["emptied", "removed"])
def test_output_emptied_or_removed_by_hand_is_built_whole(busy_site, tmp_path, how):
    for path in sorted(busy_site.output.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    if how == "removed":
        busy_site.output.rmdir()
    busy_site.build()
    assert busy_site.tree() == fresh_copy(busy_site, tmp_path, "cold").tree()


def test_an_unchanged_site_is_not_built_again_until_the_clock_reaches_a_change(busy_site):
    """The CLI stops early when no input changed; an embargo lifting still shows."""
    time.sleep(2.1)  # inputs changed just now are not trusted by their times
    result = busy_site.cli("build", "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    cache = busy_site.root / "state/cache/entries.sqlite"
    os.rename(cache, cache.with_suffix(".moved"))  # a full build would make a new one
    result = busy_site.cli("build", "--now", (NOW + timedelta(hours=1)).isoformat())
    assert result.returncode == 0 and "built" in result.stderr, result.stderr
    assert not cache.exists(), "the build ran although nothing had changed"
    page = busy_site.output / "en/2026/11/later/index.html"
    assert not page.exists()
    busy_site.cli("build", "--now", (NOW + timedelta(days=2)).isoformat(), check=True)
    assert page.exists(), "the embargo lifted but the build was skipped"


def test_an_edit_is_seen_by_the_early_stop(busy_site):
    busy_site.cli("build", "--now", NOW.isoformat(), check=True)
    time.sleep(2.1)
    edit(busy_site, "2025/old-10.md", title="Old 10", date="2025-03-11T10:00:00+04:00", body="Corrected text.")
    busy_site.cli("build", "--now", NOW.isoformat(), check=True)
    assert b"Corrected text." in (busy_site.output / "en/2025/03/old-10/index.html").read_bytes()


def test_the_survey_lists_content_as_source_files_does(site):
    """The build takes content/'s listing from the signature's walk: it must be source_files' listing exactly."""
    from publisher import stamp
    from publisher.content import source_files

    content = site.root / "content"
    site.entry("2026/b.md", title="B", body="B.")
    site.entry("2026/a/deep.md", title="Deep", body="Deep.")
    for rel in (".hidden.md", "_drafts/x.md", "2026/.swap.md", "2026/_notes/y.md", "images/p.png", "README"):
        site.write(f"content/{rel}", b"x")
    os.symlink(content / "2026/b.md", content / "2026/link.md")
    os.symlink(site.root / "publisher.toml", content / "outside.md")
    os.symlink(content / "nowhere", content / "dangling.png")
    os.symlink(content / "images", content / "images-link")
    os.mkfifo(content / "2026/pipe.md")

    files, signatures = stamp.survey(site.config).take_content()
    assert files == source_files(content)
    regular = [f.path for f in source_files(content) if not f.link]
    assert sorted(signatures) == sorted(regular)
    assert all(signatures[path] == stamp.stat_signature(os.stat(path)) for path in regular)
