"""The redaction list: spellings of one name all match, only hashes are stored, hits never show the name.

The test names are written ROT13-encoded or as escapes, so that this file itself holds no
clear-text name and the repository-wide search below can prove it.
"""

from __future__ import annotations

import codecs
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from publisher.config import load_config
from publisher.problems import EditorError
from publisher.redaction import add, load


def hidden(text: str) -> str:
    return codecs.decode(text, "rot13")


SURNAME = hidden("Dhyvlri")
GIVEN = hidden("Pnivq")
SPELLINGS = [
    SURNAME, hidden("Thyvlri"), hidden("Thyílri"), hidden("DHYİLRI"), hidden("thyvri"),
    "\u0413\u0443\u043b\u0438\u0435\u0432",  # Russian, nominative
    "\u041a\u0443\u043b\u0438\u0435\u0432",  # Russian, the other common spelling
    "\u0413\u0443\u043b\u0438\u0435\u0432\u0443",  # Russian, dative
    "\u0413\u0443\u043b\u0438\u0435\u0432\u044b\u043c",  # Russian, instrumental
    hidden("Dhyvlriva"), hidden("Dhyvlriqəa"),  # Azerbaijani genitive and ablative
    "\u0413\u0443\u043b\u0438\u0458\u0435\u0432",  # Azerbaijani Cyrillic
    hidden("Thyv\u00adlri"),  # with a soft hyphen inside
]
GIVEN_SPELLINGS = [GIVEN, hidden("Wnivq"), "\u0414\u0436\u0430\u0432\u0438\u0434", hidden("Qwnivq")]


def errors(site) -> list[str]:
    return [str(p) for p in site.check() if not p.warning]


def line_of(site, rel: str, needle: str) -> int:
    lines = (site.root / rel).read_text(encoding="utf-8").split("\n")
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_listed_surname_matches(site, spelling):
    add(site.config, SURNAME)
    site.entry("2023/raid.md", summary="'A raid.'", body=f"Police raided a party.\n\nLater {spelling} was questioned.\n")
    line = line_of(site, "content/2023/raid.md", "questioned")
    assert errors(site) == [f"content/2023/raid.md:{line}: a name on the redaction list appears in the body "
                            f"(column 7, 1 word): remove it"]


@pytest.mark.parametrize("given", GIVEN_SPELLINGS)
def test_a_full_name_matches_in_every_spelling_but_not_its_parts(site, given):
    add(site.config, f"{GIVEN} {SURNAME}")
    site.entry("2023/raid.md", summary="'A raid.'", body=f"We spoke to {given} {SPELLINGS[5]} today.\n\n"
                                                       f"{given} alone, and {SURNAME} alone, are not the name.\n")
    assert errors(site) == [f"content/2023/raid.md:{line_of(site, 'content/2023/raid.md', 'today')}: a name on the "
                            f"redaction list appears in the body (column 13, 2 words): remove it"]


def test_a_name_split_over_two_lines_matches(site):
    add(site.config, f"{GIVEN} {SURNAME}")
    site.entry("2023/raid.md", summary="'A raid.'", body=f"We spoke to {GIVEN}\n{SURNAME} today.\n")
    assert len(errors(site)) == 1


def test_every_field_and_the_file_name_are_searched(site):
    add(site.config, SURNAME)
    site.write("content/images/portrait.png", _png())
    site.write(f"content/images/{hidden('dhyvlri')}-portrait.png", _png())
    rel = f"content/2023/{hidden('dhyvlri')}-raid.md"
    site.write(rel, "\n".join([
        "---",
        f"title: Questions for {SURNAME}",
        "type: alert",
        "date: 2023-07-27T10:00:00+04:00",
        f"summary: What {SURNAME} said.",
        f"tags: [police, {hidden('dhyvlri')}]",
        "image: /images/portrait.png",
        f"image_alt: {SURNAME} at the court",
        "action:",
        "  label: Write",
        "  url: https://act.example.net/write",
        "  targets:",
        f"    - name: {SURNAME}",
        "---",
        "",
        f"![{SURNAME}](/images/portrait.png) and [a link](https://example.net/{hidden('dhyvlri')})",
        "",
    ]))
    found = errors(site)
    for field, needle in (("title", "title:"), ("summary", "summary:"), ("tags", "tags:"), ("image_alt", "image_alt:"),
                          ("action", "- name:")):
        assert [p for p in found if p.startswith(f"{rel}:{line_of(site, rel, needle)}: a name on the redaction list "
                                                 f"appears in the field '{field}'")], field
    body = line_of(site, rel, "](")
    text = (site.root / rel).read_text(encoding="utf-8").split("\n")[body - 1]
    url_column = text.index("example.net/") + len("example.net/") + 1
    for column in (3, url_column):
        assert f"{rel}:{body}: a name on the redaction list appears in the body (column {column}, 1 word): remove it" in found
    assert f"{rel}:1: the file name or folder holds a name on the redaction list: rename it" in found
    image = f"content/images/{hidden('dhyvlri')}-portrait.png"
    assert f"{image}:1: the file name or folder holds a name on the redaction list: rename it" in found
    messages = [p.split(": ", 1)[1] for p in found]  # a file's own path names it, and must, to be renamed
    assert not any(spelling.lower() in m.lower() for m in messages for spelling in SPELLINGS)


def test_ordinary_words_do_not_match(site):
    add(site.config, SURNAME)
    add(site.config, f"{GIVEN} {SURNAME}")
    site.entry("2023/raid.md", summary="'A raid.'", body=(
        "Alive and well, the olive trees of Baku; Quli, Gulnar, Gulf, Qulu, Guli, Culver, Kul, Gül, Aliyev.\n"
        "Полиция задержала активистов. Polis fəalları saxladı. The alliance has an alias.\n"))
    assert errors(site) == []


def test_check_and_build_say_where_but_never_the_name(site):
    add(site.config, f"{GIVEN} {SURNAME}")
    site.entry("2023/raid.md", title=f"{GIVEN} {SURNAME} detained", summary="'A raid.'")
    check = site.cli("check", "--now", "2026-11-22T12:00:00Z")
    build = site.cli("build", "--now", "2026-11-22T12:00:00Z")
    assert check.returncode == 1 and build.returncode == 1
    for result in (check, build):
        assert "content/2023/raid.md:2: a name on the redaction list appears in the field 'title'" in result.stderr
        assert "Traceback" not in result.stderr
        shown = (result.stdout + result.stderr).lower()
        assert not any(s.lower() in shown for s in SPELLINGS + GIVEN_SPELLINGS)
    assert not site.output.exists()
    with pytest.raises(EditorError):
        site.build()


def test_the_list_holds_only_a_salt_and_hashes(site):
    add(site.config, f"{GIVEN} {SURNAME}")
    add(site.config, SURNAME)
    add(site.config, SURNAME)  # twice is once
    text = (site.root / "redactions.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "format: 2" and lines[1].startswith("salt: ") and len(lines) == 4
    hashes = sorted(line.split() for line in lines[2:])
    assert sorted(len(h) for h in hashes) == [1, 2]  # the two-word name carries its first word's tag
    assert all(len(parts[0]) == 64 and int(parts[0], 16) >= 0 for parts in hashes)
    assert all(len(parts[1]) == 2 and int(parts[1], 16) >= 0 for parts in hashes if len(parts) == 2)
    assert not any(s.lower() in text.lower() for s in SPELLINGS + GIVEN_SPELLINGS)
    assert len(load(site.config).hashes) == 2


def test_a_format_1_list_is_still_read_and_scanned(site):
    add(site.config, f"{GIVEN} {SURNAME}")
    text = (site.root / "redactions.txt").read_text(encoding="utf-8")
    old = "\n".join(line.split()[0] if len(line.split()) == 2 and len(line.split()[0]) == 64 else line
                    for line in text.splitlines()).replace("format: 2", "format: 1")
    site.write("redactions.txt", old + "\n")
    assert load(site.config).untagged
    site.entry("a.md", body=f"We spoke to {GIVEN} {SURNAME} today.")
    assert any("redaction list" in p.message for p in site.check() if not p.warning)
    with pytest.raises(EditorError):
        add(site.config, "Another Person")


def test_two_sites_hash_the_same_name_differently(site, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(site.root, other)
    add(site.config, SURNAME)
    add(load_config(other), SURNAME)
    assert load(site.config).hashes.isdisjoint(load(load_config(other)).hashes)


def test_redact_add_asks_for_the_name_unseen(site):
    result = subprocess.run([sys.executable, "-m", "publisher", "redact", "add"], cwd=site.root, input=SURNAME + "\n",
                            capture_output=True, text=True, timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert SURNAME not in result.stdout + result.stderr
    assert len(load(site.config).hashes) == 1
    site.entry("2023/raid.md", summary="'A raid.'", body=f"{hidden('Thyvlri')}.")
    assert len(errors(site)) == 1


def test_a_damaged_list_is_reported_with_its_line(site):
    site.write("redactions.txt", "# list\nformat: 1\nsalt: 00112233445566778899aabbccddeeff\nnot-a-hash\n")
    assert errors(site) == ["redactions.txt:4: not a hash: the list holds only hashes; add names with "
                            "`publisher redact add`"]


def test_the_repository_holds_no_clear_text_test_name():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for name in {s.replace("\u00ad", "") for s in SPELLINGS + GIVEN_SPELLINGS}:
        found = subprocess.run(["git", "grep", "--untracked", "-I", "-i", "-l", "-F", "-e", name],
                               cwd=REPO, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
        assert found.returncode == 1, f"a test name is written in clear text in: {found.stdout}"


def test_the_sample_site_list_matches_the_test_name():
    config = load_config(REPO)
    from publisher.redaction import RedactionList, fold, name_key

    redactions: RedactionList = load(config)
    assert redactions.hash(name_key(fold(w) for w in (GIVEN, SURNAME))) in redactions.hashes


def _png() -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, "PNG")
    return buffer.getvalue()


def test_text_files_config_and_site_templates_are_searched(site):
    add(site.config, SURNAME)
    site.write("content/files/notes.txt", f"Minutes.\nPresent: {hidden('Thyvlri')} and others.\n")
    site.write("content/images/map.svg", f'<svg xmlns="http://www.w3.org/2000/svg"><title>{SURNAME}</title></svg>')
    site.write("templates/footer.html", f"<p>Contact {hidden('Thyvlri')}</p>\n")
    site.write("publisher.toml", f"author = \"{SURNAME}\"\n" + (site.root / "publisher.toml").read_text())
    found = errors(site)
    toml = line_of(site, "publisher.toml", "author")
    assert "content/files/notes.txt:2: a name on the redaction list appears in the file (column 10, 1 word): remove it" in found
    column = (site.root / "content/images/map.svg").read_text(encoding="utf-8").index(SURNAME) + 1
    assert f"content/images/map.svg:1: a name on the redaction list appears in the file (column {column}, 1 word): " \
           f"remove it" in found
    assert "templates/footer.html:1: a name on the redaction list appears in the file (column 12, 1 word): remove it" in found
    assert f"publisher.toml:{toml}: a name on the redaction list appears in the file (column 11, 1 word): remove it" in found
