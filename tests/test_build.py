"""The build: golden output, determinism, embargoes, and atomic replacement of output/."""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import NOW, ScratchSite, entry_text
from publisher.output import recover, write_tree
from publisher.problems import EditorError

GOLDEN = Path(__file__).parent / "golden_site"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_GOLDEN") == "1"
GOLDEN_NOW = datetime(2023, 8, 20, 12, 0, tzinfo=timezone.utc)


def golden_site(tmp_path: Path) -> ScratchSite:
    root = tmp_path / "golden"
    shutil.copytree(GOLDEN / "site", root)
    return ScratchSite(root)


def test_golden_tree(tmp_path):
    """Build a small site and compare every byte; PUBLISHER_REGENERATE_GOLDEN=1 rewrites the expectation."""
    site = golden_site(tmp_path)
    site.build(GOLDEN_NOW)
    built = site.tree()
    expected_dir = GOLDEN / "expected"
    if REGENERATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, data in built.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes(data)
    expected = {p.relative_to(expected_dir).as_posix(): p.read_bytes()
                for p in sorted(expected_dir.rglob("*")) if p.is_file()}
    assert sorted(built) == sorted(expected), "file list differs; review, then regenerate"
    for rel in built:
        if built[rel] != expected[rel]:
            diff = difflib.unified_diff(expected[rel].decode(errors="replace").splitlines(),
                                        built[rel].decode(errors="replace").splitlines(), lineterm="", n=1)
            pytest.fail(f"{rel} differs from the golden copy:\n" + "\n".join(list(diff)[:40]))


def test_two_builds_are_byte_identical(tmp_path):
    first, second = golden_site(tmp_path / "a"), golden_site(tmp_path / "b")
    first.build(GOLDEN_NOW)
    second.build(GOLDEN_NOW)
    assert first.tree() == second.tree()
    first.build(GOLDEN_NOW)
    assert first.tree() == second.tree()


def test_sample_site_builds_deterministically(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    copies = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        shutil.copy(repo / "publisher.toml", root)
        shutil.copytree(repo / "content", root / "content")
        copies.append(ScratchSite(root))
        copies[-1].build(NOW)
    assert copies[0].tree() == copies[1].tree()
    assert len(copies[0].tree()) > 20


def test_drafts_and_embargoed_entries_appear_nowhere(tmp_path):
    site = golden_site(tmp_path)
    site.build(GOLDEN_NOW)
    for rel, data in site.tree().items():
        for secret in (b"Embargoed statement", b"not-yet", b"Not yet.", b"A draft nobody", b"a-draft", b"Draft text"):
            assert secret not in data, f"{secret!r} leaked into {rel}"


def test_embargo_lifts_at_its_date(tmp_path):
    site = golden_site(tmp_path)
    site.build(datetime(2030, 1, 1, 5, 0, tzinfo=timezone.utc))  # 09:00 in Baku
    assert (site.output / "en/2030/01/not-yet/index.html").is_file()
    site.build(datetime(2030, 1, 1, 4, 59, 59, tzinfo=timezone.utc))
    assert not (site.output / "en/2030/01/not-yet").exists()


def test_archive_links_are_relative_and_resolve(tmp_path):
    site = golden_site(tmp_path)
    site.build(GOLDEN_NOW)
    page = (site.output / "en/2023/07/party-raid/index.html").read_text()
    assert 'href="../../../../static/style.css"' in page
    assert 'src="../../../../images/room.png"' in page
    assert '<link rel="canonical" href="https://golden.example.org/en/2023/07/party-raid/">' in page
    assert 'hreflang="az"' in page


def test_content_files_are_copied(tmp_path):
    site = golden_site(tmp_path)
    site.build(GOLDEN_NOW)
    assert (site.output / "images/room.png").is_file()


def test_a_content_file_may_not_overwrite_a_page(site):
    site.entry("a.md")
    site.write("content/robots.txt", "User-agent: *\n")
    message = "content/robots.txt:1: this file would overwrite a generated page; rename or move it"
    assert [str(p) for p in site.check() if not p.warning] == [message]  # check builds in memory too
    with pytest.raises(EditorError) as caught:
        site.build()
    assert [str(p) for p in caught.value.problems] == [message]


def test_a_content_file_added_over_a_page_fails_a_warm_build_and_keeps_the_output(site):
    site.entry("a.md")
    site.build()
    before = site.tree()
    site.write("content/en/2023/07/a/index.html.txt", "harmless\n")  # a file beside a page is fine
    site.write("content/robots.txt", "User-agent: *\n")
    with pytest.raises(EditorError) as caught:
        site.build()
    assert [str(p) for p in caught.value.problems] == [
        "content/robots.txt:1: this file would overwrite a generated page; rename or move it"]
    assert site.tree() == before


def test_a_unit_claiming_a_path_twice_or_one_already_claimed_is_refused(tmp_path):
    from publisher.output import DuplicatePath, publish
    from publisher.units import Unit

    for units, path in [([Unit(b"a", lambda: [("x.txt", b"1"), ("x.txt", b"2")])], "x.txt"),
                        ([Unit(b"a", lambda: [("y.txt", b"1"), ("z.txt", b"1")]),
                          Unit(b"b", lambda: [("w.txt", b"2"), ("z.txt", b"2")])], "z.txt")]:
        with pytest.raises(DuplicatePath) as caught:
            publish(units, tmp_path / "out", tmp_path / "manifest")
        assert caught.value.path == path


@pytest.mark.parametrize("name, kind", [("page.html", "'.html' files"), ("logo.svg", "'.svg' files"),
                                        ("readers.csv", "'.csv' files"), ("notes", "files without an extension")])
def test_only_images_pdfs_and_text_are_published_from_content(site, name, kind):
    site.entry("a.md")
    site.write(f"content/files/{name}", "<script>alert(1)</script>")
    site.write("content/files/ok.pdf", b"%PDF-1.4\n")
    expected = f"content/files/{name}:1: {kind} are not published (only .png .jpg .jpeg .gif .webp .pdf .txt); move it out of content/"
    assert [str(p) for p in site.check() if not p.warning] == [expected]
    with pytest.raises(EditorError):
        site.build()
    assert not site.output.exists()


def test_a_link_out_of_content_is_refused(site, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for publishing")
    site.entry("a.md")
    (site.root / "content/leak.txt").symlink_to(secret)
    (site.root / "content/leak.md").symlink_to(secret)
    problems = sorted(str(p) for p in site.check() if not p.warning)
    assert problems == ["content/leak.md:1: this is a link to a file outside content/; copy the file in instead",
                        "content/leak.txt:1: this is a link to a file outside content/; copy the file in if it is "
                        "meant to be published"]
    with pytest.raises(EditorError):
        site.build()

def test_failed_writer_leaves_previous_output_untouched(tmp_path):
    out = tmp_path / "output"
    write_tree([("a.html", b"old a"), ("sub/b.html", b"old b")], out)
    before = snapshot(out)

    def failing():
        yield "a.html", b"new a"
        yield "c.html", b"new c"
        raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError):
        write_tree(failing(), out)
    assert snapshot(out) == before
    assert not list(tmp_path.glob(".output-staging-*"))


def test_broken_template_fails_the_build_and_keeps_output(site):
    site.entry("a.md")
    site.build()
    before = snapshot(site.output)
    site.write("templates/entry.html", '{% extends "base.html" %}{% block main %}\n{{ entry.nope }}{% endblock %}')
    result = site.cli("build", "--now", NOW.isoformat())
    assert result.returncode == 1
    assert result.stderr.startswith("templates/entry.html:2: template error:")
    assert "Traceback" not in result.stderr
    assert snapshot(site.output) == before


def test_interrupted_swap_is_repaired(tmp_path):
    out = tmp_path / "output"
    write_tree([("a.html", b"old")], out)
    os.rename(out, tmp_path / ".output-old")  # as if killed between the two fallback renames
    (tmp_path / ".output-staging-x").mkdir()
    recover(out)
    assert snapshot(out) == {".gitkeep": b"", "a.html": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".output.lock", "output"]


def test_sigkill_at_any_moment_leaves_previous_output_whole(site, tmp_path):
    for index in range(400):
        site.write(f"content/e{index}.md", entry_text(title=f"Entry {index}", date=f"2023-0{1 + index % 9}-01",
                                                      body="Words. " * 200))
    site.build()
    before = snapshot(site.output)
    site.write("content/e0.md", entry_text(title="Changed", body="New words."))
    reference = ScratchSite(tmp_path / "reference")
    shutil.copytree(site.root / "content", reference.root / "content")
    shutil.copy(site.root / "publisher.toml", reference.root)
    reference.build()
    after = snapshot(reference.output)
    killed_mid_build = 0
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        process = subprocess.Popen([sys.executable, "-m", "publisher", "build", "--now", NOW.isoformat()],
                                   cwd=site.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_staging(site.root, delay, process)
        killed_mid_build += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (site.root / ".output-journal").exists():
            # Killed after the commit, while moving its few changed files in: the build has happened,
            # and recovery (the first thing any build does) finishes the moves.
            recover(site.output)
            assert snapshot(site.output) == after, f"a kill at +{delay}s left a journal that did not finish the build"
        now = snapshot(site.output)
        assert now == before or now == after, f"a kill at +{delay}s left a mixed output tree"
        before = now
    assert killed_mid_build >= 3, "the kills all came too late to test anything"
    site.build()
    assert snapshot(site.output) == after
    assert not list(site.root.glob(".output-*"))


def wait_for_staging(root: Path, extra: float, process: subprocess.Popen) -> None:
    """Wait until the build is writing its staging tree, then a little longer."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if any(root.glob(".output-staging-*/en")):
            break
        time.sleep(0.005)
    time.sleep(extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
