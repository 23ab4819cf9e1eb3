"""The render cache and the process pool never change what a build makes."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import timedelta, tzinfo

import pytest
from PIL import Image

from conftest import ScratchSite, entry_text
from publisher import render


def fresh_copy(site: ScratchSite, tmp_path, name: str) -> ScratchSite:
    """Copy a site's inputs (not its output or state) and build it cold."""
    copy = ScratchSite(tmp_path / name)
    for item in ("publisher.toml", "content", "templates", "redactions.txt"):
        source = site.root / item
        if source.is_dir():
            shutil.copytree(source, copy.root / item)
        elif source.exists():
            copy.root.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy.root / item)
    copy.build()
    return copy


def poison(site: ScratchSite) -> None:
    """Replace every cached body with a marker, so a stale hit would show in the output."""
    db = sqlite3.connect(site.root / "state/cache/entries.sqlite")
    with db:
        db.execute("UPDATE texts SET html = '<p>STALE</p>'")
    db.close()


def stale(site: ScratchSite) -> bool:
    return any(b"STALE" in data for data in site.tree().values())


def assert_rendered_afresh(site: ScratchSite) -> None:
    """Every cached body was poisoned: both entries must have been rendered again, and nothing stale shown."""
    db = sqlite3.connect(site.root / "state/cache/entries.sqlite")
    bodies = " ".join(html for (html,) in db.execute("SELECT html FROM texts"))
    db.close()
    assert "More text." in bodies and "Text with a picture." in bodies
    assert not stale(site)


@pytest.fixture
def cached_site(site: ScratchSite) -> ScratchSite:
    site.write("content/images/pic.png", b"")
    Image.new("RGB", (40, 20), (10, 20, 30)).save(site.root / "content/images/pic.png")
    site.entry("2023/a.md", title="First", body="Text with a picture.\n\n![A room](/images/pic.png)", summary="'s'")
    site.entry("2023/b.md", title="Second", date="2023-07-28T10:00:00+04:00", body="More text.", summary="'s'")
    site.build()
    return site


def test_a_warm_build_uses_the_cache(cached_site):
    poison(cached_site)
    (cached_site.root / "state/cache/output.manifest").unlink()  # render every page again, from the cache
    cached_site.build()
    assert stale(cached_site), "the cache was not used at all"


def test_changed_entry_is_rendered_again(cached_site, tmp_path):
    poison(cached_site)
    cached_site.write("content/2023/b.md", entry_text(title="Second", date="2023-07-28T10:00:00+04:00",
                                                        body="Changed text.", summary="'s'"))
    cached_site.build()
    page = (cached_site.output / "en/2023/07/b/index.html").read_bytes()
    assert b"Changed text." in page and b"STALE" not in page


def test_changed_image_renders_its_entry_again(cached_site, tmp_path):
    poison(cached_site)
    Image.new("RGB", (64, 48), (10, 20, 30)).save(cached_site.root / "content/images/pic.png")
    cached_site.build()
    page = (cached_site.output / "en/2023/07/a/index.html").read_text()
    assert 'width="64" height="48"' in page and "STALE" not in page


def test_warm_builds_after_each_change_equal_cold_builds(cached_site, tmp_path):
    changes = [
        lambda: Image.new("RGB", (64, 48), (10, 20, 30)).save(cached_site.root / "content/images/pic.png"),
        lambda: cached_site.entry("2023/b.md", title="Second, edited", date="2023-07-28T10:00:00+04:00",
                                  body="Edited.", summary="'s'"),
        lambda: cached_site.write("publisher.toml", (cached_site.root / "publisher.toml").read_text().replace(
            "Test Alliance", "Renamed Alliance")),
        lambda: (cached_site.root / "content/2023/a.md").unlink(),
    ]
    for number, change in enumerate(changes):
        change()
        cached_site.build()
        assert cached_site.tree() == fresh_copy(cached_site, tmp_path, f"cold{number}").tree(), f"change {number}"


def in_this_process(monkeypatch) -> list[str]:
    """Record the files render.process_file renders in the test's own process (not in forked children)."""
    parent, real, rendered = os.getpid(), render.process_file, []

    def recording(rel, *args):
        if os.getpid() == parent:
            rendered.append(rel)
        return real(rel, *args)

    monkeypatch.setattr(render, "process_file", recording)
    return rendered


def test_an_edited_entry_is_rendered_in_a_child_while_the_cache_is_read(cached_site, tmp_path, monkeypatch):
    rendered_here = in_this_process(monkeypatch)
    poison(cached_site)
    cached_site.entry("2023/b.md", title="Second", date="2023-07-28T10:00:00+04:00", body="Edited.", summary="'s'")
    cached_site.build()
    assert rendered_here == []  # the forked child rendered it
    page = (cached_site.output / "en/2023/07/b/index.html").read_bytes()
    assert b"Edited." in page and b"STALE" not in page
    assert page == (fresh_copy(cached_site, tmp_path, "cold").output / "en/2023/07/b/index.html").read_bytes()


def test_an_entry_the_child_fails_to_render_is_rendered_here(cached_site, tmp_path, monkeypatch):
    parent, real = os.getpid(), render.process_file

    def failing_in_children(rel, *args):
        if os.getpid() != parent:
            os._exit(3)  # as a child killed part-way would end
        return real(rel, *args)

    monkeypatch.setattr(render, "process_file", failing_in_children)
    cached_site.entry("2023/b.md", title="Second", date="2023-07-28T10:00:00+04:00", body="Edited.", summary="'s'")
    cached_site.build()
    assert cached_site.tree() == fresh_copy(cached_site, tmp_path, "cold").tree()


def test_a_file_touched_but_unchanged_keeps_its_cached_result(cached_site, monkeypatch):
    rendered_here = in_this_process(monkeypatch)
    poison(cached_site)
    (cached_site.root / "state/cache/output.manifest").unlink()  # render every page again, from the cache
    path = cached_site.root / "content/2023/b.md"
    path.write_bytes(path.read_bytes())  # hashed afresh (new times), the same bytes
    cached_site.build()
    assert rendered_here == [] and b"STALE" in (cached_site.output / "en/2023/07/b/index.html").read_bytes()


def test_changed_config_renders_everything_again(cached_site, tmp_path):
    poison(cached_site)
    config = (cached_site.root / "publisher.toml").read_text()
    cached_site.write("publisher.toml", config.replace('timezone = "Asia/Baku"', 'timezone = "Europe/Berlin"'))
    cached_site.build()
    assert_rendered_afresh(cached_site)
    assert cached_site.tree() == fresh_copy(cached_site, tmp_path, "cold").tree()


def test_changed_library_version_renders_everything_again(cached_site, monkeypatch):
    poison(cached_site)
    real = render.metadata.version
    monkeypatch.setattr(render.metadata, "version", lambda name: "99.0" if name == "markdown" else real(name))
    render.code_version.cache_clear()
    try:
        cached_site.build()
    finally:
        render.code_version.cache_clear()
    assert not stale(cached_site)


def test_changed_template_and_catalog_show_in_a_warm_build(cached_site, tmp_path, monkeypatch):
    cached_site.write("templates/retraction.html", "<p>withdrawn</p>\n")
    base = (render.Path(render.__file__).parent.parent / "templates/entry.html").read_text()
    cached_site.write("templates/entry.html", base.replace("<article", "<article data-theme=\"v2\""))
    cached_site.build()
    assert b'data-theme="v2"' in (cached_site.output / "en/2023/07/a/index.html").read_bytes()
    from publisher import locations, templates
    catalogs = tmp_path / "locale"
    shutil.copytree(templates.LOCALE_DIR, catalogs)
    po = catalogs / "az/LC_MESSAGES/messages.po"
    if po.exists():
        po.write_text(po.read_text().replace('msgstr "', 'msgstr "X', 1))
    monkeypatch.setattr(templates, "LOCALE_DIR", catalogs)
    monkeypatch.setattr(locations, "LOCALE_DIR", catalogs)
    cached_site.build()
    assert cached_site.tree() == fresh_copy(cached_site, tmp_path, "cold").tree()


def test_process_pool_gives_the_same_output_as_one_process(site, tmp_path, monkeypatch):
    for index in range(render.POOL_THRESHOLD + 10):
        site.entry(f"2023/e{index}.md", title=f"Entry {index}", body=f"Body {index}.\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    site.build()
    pooled = site.tree()
    monkeypatch.setattr(render, "POOL_THRESHOLD", 10**9)
    serial = fresh_copy(site, tmp_path, "serial")
    assert pooled == serial.tree()


def test_problems_come_back_from_the_pool(site, monkeypatch):
    monkeypatch.setattr(render, "POOL_THRESHOLD", 2)
    site.entry("a.md")
    site.entry("b.md", type="nope")
    site.entry("c.md", date="2023-02-30")
    assert [(p.path, p.line) for p in site.check() if not p.warning] == [("content/b.md", 3), ("content/c.md", 4)]


def test_a_damaged_cache_is_replaced_and_the_output_is_the_same(cached_site, tmp_path):
    before = cached_site.tree()
    (cached_site.root / "state/cache/entries.sqlite").write_bytes(b"not a database" * 100)
    assert [p for p in cached_site.check() if not p.warning] == []  # read-only: it ignores the damaged file
    cached_site.build()
    assert cached_site.tree() == before


def test_a_cache_in_the_previous_layout_is_started_again(cached_site, tmp_path):
    """Before CACHE_FORMAT 2 the texts were a WITHOUT ROWID table and the file had no user_version.

    Its rows carry the keys of today's entries, with stale texts: a build or a check that read
    them would show STALE.
    """
    db = sqlite3.connect(cached_site.root / "state/cache/entries.sqlite")
    with db:
        db.execute("CREATE TABLE older (key BLOB PRIMARY KEY, markdown TEXT NOT NULL, html TEXT NOT NULL) WITHOUT ROWID")
        db.execute("INSERT INTO older SELECT key, markdown, '<p>STALE</p>' FROM texts")
        db.execute("DROP TABLE texts")
        db.execute("ALTER TABLE older RENAME TO texts")
        db.execute("PRAGMA user_version = 0")
    db.close()
    assert [p for p in cached_site.check() if not p.warning] == []
    shutil.rmtree(cached_site.output)
    cached_site.build()
    assert not stale(cached_site)
    assert cached_site.tree() == fresh_copy(cached_site, tmp_path, "cold").tree()
    db = sqlite3.connect(cached_site.root / "state/cache/entries.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == render.CACHE_FORMAT
    assert "WITHOUT ROWID" not in db.execute("SELECT sql FROM sqlite_master WHERE name = 'texts'").fetchone()[0]
    db.close()


def test_markdown_that_breaks_the_renderer_is_an_editor_error(site):
    """Python-Markdown's footnotes raise RuntimeError on this; the editor gets path:line, not a traceback."""
    site.entry("2023/broken.md", body="[^]:[^n]:\n[^x]:")
    site.entry("2023/fine.md", title="Fine", body="Paragraph one.\n\nParagraph two.")
    result = site.cli("build", "--now", "2026-11-22T12:00:00+00:00")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "content/2023/broken.md:6: this text cannot be rendered (RuntimeError)" in result.stderr


def test_stored_metadata_keeps_every_entry_field(tmp_path):
    """A row holds an entry's field values, not the object: every field, of every kind, comes back the same."""
    import dataclasses
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from publisher.content import Action, Entry, Retraction, Target
    from publisher.problems import Problem

    baku, fixed = ZoneInfo("Asia/Baku"), timezone(timedelta(hours=4))
    entry = Entry(
        path="content/2023/raids.az.md", slug="raids", title="Basqınlar", type="campaign",
        date=datetime(2023, 7, 20, 10, tzinfo=fixed), lang="az", id="tag:example.org,2023-07-20:az/raids",
        markdown="", body_line=14, summary="Qısa", tags=("polis", "bakı"), draft=False, key="raids",
        updated=datetime(2023, 7, 21, tzinfo=baku), correction="Düzəliş", expires=datetime(2023, 8, 1, tzinfo=timezone.utc),
        action=Action("Yazın", "https://example.org/a", datetime(2023, 7, 30, tzinfo=baku),
                      (Target("Nazir", "Daxili İşlər", "Bakı"),), ("Azad edin",), "https://example.org/a?utm_source=x"),
        retracted=Retraction(datetime(2023, 7, 25, tzinfo=baku), "Səhv"), image="/images/pic.png", image_alt="Otaq",
        lines=(("date", 3), ("title", 2)), fingerprint=b"\x01" * 20,
    )
    result = (entry, [Problem("content/2023/raids.az.md", 5, "draft left out: x", warning=True)],
              (("/images/pic.png", b"\x02" * 16),))
    with render.RenderCache(tmp_path / "entries.sqlite") as cache:
        cache.put(b"k" * 20, result, b"s")
        cache.commit()
        back, problems, depends = cache.get({"content/2023/raids.az.md": b"k" * 20}, b"s")["content/2023/raids.az.md"]
    for item in dataclasses.fields(Entry):
        expected = "" if item.name in ("markdown", "rendered") else getattr(entry, item.name)  # texts are kept apart
        assert getattr(back, item.name) == expected, item.name
    assert back.date.tzinfo == fixed and back.updated.tzinfo is baku and back.action.deadline.tzinfo is baku
    assert (problems, depends) == (result[1], result[2])
    assert dataclasses.replace(back, markdown="x").markdown == "x"  # a proper frozen dataclass still
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.title = "changed"


def test_rows_are_read_only_under_the_salt_their_keys_were_made_with(tmp_path):
    """After a config or code change retain() still keeps the old rows; a build must not even read them."""
    with render.RenderCache(tmp_path / "entries.sqlite") as cache:
        cache.put(b"k" * 20, (None, [], ()), b"old salt")
        cache.commit()
        assert cache.get({"content/a.md": b"k" * 20}, b"new salt") == {}
        assert cache.get({"content/a.md": b"k" * 20}, b"old salt") == {"content/a.md": (None, [], ())}


def test_a_row_in_another_shape_is_rendered_again(cached_site):
    """A row whose metadata is not this code's (no key collides, but a hand-copied cache might) is a miss."""
    import pickle

    db = sqlite3.connect(cached_site.root / "state/cache/entries.sqlite")
    with db:
        db.execute("UPDATE metadata SET meta = ?", (pickle.dumps((("too", "short"), [], ())),))
        db.execute("UPDATE texts SET html = '<p>STALE</p>'")
    db.close()
    cached_site.build()
    assert_rendered_afresh(cached_site)


def test_usual_metadata_is_marshalled_and_the_rest_pickled_and_both_come_back(tmp_path):
    """A fixed offset or a zoneinfo zone keeps a row in marshal; another kind of value sends it to pickle, intact."""
    import dataclasses
    from datetime import datetime, timedelta, timezone

    from markupsafe import Markup

    from publisher import records
    from publisher.content import Entry

    def entry(**changes) -> Entry:
        base = Entry(path="content/a.md", slug="a", title="A", type="update", lang="en", id="tag:x,2023:a",
                     date=datetime(2023, 7, 20, 10, 30, 5, 123, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
                     markdown="", body_line=5, lines=(("title", 2),))
        return dataclasses.replace(base, **changes)

    usual = entry(updated=datetime(2023, 7, 21, tzinfo=timezone.utc), correction="c", tags=("x",))
    others = [entry(date=datetime(2023, 7, 20, tzinfo=Odd())), entry(title=Markup("A")),
              entry(date=datetime(2023, 7, 20, tzinfo=timezone(timedelta(hours=4), "Baku")))]
    assert records.packed((usual, [], ()))[:1] == records.MARSHALLED
    assert records.packed((None, [], ()))[:1] == records.MARSHALLED
    for odd in others:
        assert records.packed((odd, [], ()))[:1] == records.PICKLED
    for original in [usual, *others]:
        back = records.unpacked(records.packed((original, [], (("/images/x.png", b"d"),))))[0]
        for item in dataclasses.fields(Entry):
            assert getattr(back, item.name) == getattr(original, item.name), item.name
            assert type(getattr(back, item.name)) is type(getattr(original, item.name)), item.name
        assert back.date.tzinfo.tzname(None) == original.date.tzinfo.tzname(None)
        assert back.date.fold == original.date.fold
    assert records.unpacked(b"x" + b"rubbish") is None


class Odd(tzinfo):
    """A time zone of a kind the marshal form does not know (module level: pickle must find it)."""

    def utcoffset(self, dt):
        return timedelta(hours=4)

    def dst(self, dt):
        return timedelta(0)

    def tzname(self, dt):
        return "ODD"

    def __eq__(self, other):
        return isinstance(other, Odd)

    def __hash__(self):
        return 4


def test_a_cache_in_the_older_one_table_form_is_replaced(cached_site, tmp_path):
    """Caches written before metadata and texts were kept apart held both in one `entries` table."""
    cache = cached_site.root / "state/cache/entries.sqlite"
    cache.unlink()
    db = sqlite3.connect(cache)
    with db:
        db.execute("CREATE TABLE entries (key BLOB PRIMARY KEY, meta BLOB NOT NULL, markdown TEXT NOT NULL, "
                   "html TEXT NOT NULL)")
        db.execute("INSERT INTO entries VALUES (x'00', x'00', 'old', '<p>STALE</p>')")
    db.close()
    shutil.rmtree(cached_site.output)
    cached_site.build()
    db = sqlite3.connect(cache)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert "entries" not in tables and {"metadata", "texts"} <= tables
    assert not stale(cached_site)
    assert cached_site.tree() == fresh_copy(cached_site, tmp_path, "cold").tree()
