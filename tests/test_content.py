"""Every editor mistake in an entry is reported as path:line: message, all at once."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from conftest import entry_text

from publisher.render import load_rendered

GOOD = "---\ntitle: A\ntype: update\ndate: 2017-01-01\n---\nbody\n"

CASES = [
    ("not-utf8", b"---\ntitle: A\ntype: update\ndate: 2017-01-01\n---\nbad \xff byte\n",
     ["6: the file is not UTF-8 (byte 0xff); save it as UTF-8"]),
    ("no-front-matter", "just text\n", ["1: no front matter: the file must start with a '---' line"]),
    ("unclosed", "---\ntitle: A\ntype: update\ndate: 2017-01-01\n",
     ["1: the front matter is not closed: add a '---' line after it"]),
    ("yaml-syntax", "---\ntitle: [unclosed\ntype: update\n---\nbody\n",
     ["3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence on line 2)"]),
    ("yaml-tab", "---\ntitle: A\ntype: update\n\tdate: 2017-01-01\n---\nbody\n",
     ["4: YAML syntax error: found a tab character that violates indentation (while scanning a plain scalar on line 3)"]),
    ("not-a-mapping", "---\n- a\n- b\n---\nbody\n", ["2: the front matter must be 'field: value' lines"]),
    ("empty-front-matter", "---\n---\nbody\n", ["1: the front matter is empty: it needs title, type and date"]),
    ("missing-fields", "---\nsummary: s\n---\nbody\n",
     ["1: missing required field 'date'", "1: missing required field 'title'", "1: missing required field 'type'"]),
    ("unknown-field", GOOD.replace("type:", "titel: x\ntype:"), ["3: unknown field 'titel' (did you mean 'title'?)"]),
    ("twice", GOOD.replace("type:", "title: B\ntype:"), ["3: field 'title' is given twice"]),
    ("bad-type", GOOD.replace("type: update", "type: urgent"), ["3: unknown type 'urgent' (use update, campaign or alert)"]),
    ("bad-lang", GOOD.replace("---\nbody", "lang: fr\n---\nbody"), ["5: unknown lang 'fr' (use en, az or ru)"]),
    ("impossible-date", GOOD.replace("2017-01-01", "2017-02-30"),
     ["4: 'date': cannot read '2017-02-30' as a date; use ISO 8601 such as 2017-09-25T10:00:00+04:00, in the years 1900 to 2999"]),
    ("unreadable-date", GOOD.replace("2017-01-01", "next tuesday"),
     ["4: 'date': cannot read 'next tuesday' as a date; use ISO 8601 such as 2017-09-25T10:00:00+04:00, in the years 1900 to 2999"]),
    ("number-date", GOOD.replace("2017-01-01", "2017"),
     ["4: 'date': cannot read '2017' as a date; use ISO 8601 such as 2017-09-25T10:00:00+04:00, in the years 1900 to 2999"]),
    ("draft-not-bool", GOOD.replace("---\nbody", "draft: maybe\n---\nbody"), ["5: 'draft' must be true or false"]),
    ("tags-not-list", GOOD.replace("---\nbody", "tags: {a: 1}\n---\nbody"),
     ["5: 'tags' must be a list of words, e.g. [police, baku]"]),
    ("title-not-text", GOOD.replace("title: A", "title: [a, b]"), ["2: 'title' must be text"]),
    ("alert-without-action", GOOD.replace("type: update", "type: alert"),
     ["3: an alert needs an 'action' (label and url of the call to action)"]),
    ("campaign-without-action", GOOD.replace("type: update", "type: campaign"),
     ["3: a campaign needs an 'action' (label and url of the call to action)"]),
    ("action-bad-url", GOOD.replace("type: update", "type: campaign").replace(
        "---\nbody", "action:\n  label: Go\n  url: javascript:alert(1)\n---\nbody"),
     ["5: 'action.url' must be an https:// or mailto: address"]),
    ("action-unknown-field", GOOD.replace("type: update", "type: campaign").replace(
        "---\nbody", "action:\n  label: Go\n  url: https://example.org/\n  target: x\n---\nbody"),
     ["5: unknown field 'action.target' (use label, url, deadline, targets or asks)"]),
    ("image-without-alt", GOOD.replace("---\nbody", "image: /x.png\n---\nbody"),
     ["5: 'image' /x.png does not exist under content/",
      "5: 'image' needs 'image_alt', a description for readers who cannot see it"]),
    ("remote-image", GOOD.replace("---\nbody", "image: https://evil.example/x.png\nimage_alt: x\n---\nbody"),
     ["5: 'image' must be a local path under content/, e.g. /images/2023/x.png"]),
    ("empty-body", "---\ntitle: A\ntype: update\ndate: 2017-01-01\n---\n\n  \n",
     ["6: the body is empty: write the entry below the front matter"]),
    ("updated-without-correction", GOOD.replace("---\nbody", "updated: 2017-02-01\n---\nbody"),
     ["5: 'updated' needs a 'correction' note telling readers what changed"]),
    ("expires-before-date", GOOD.replace("---\nbody", "expires: 2016-01-01\n---\nbody"),
     ["5: 'expires' must be after 'date'"]),
    ("alias", "---\ntitle: &t A\ntype: update\ndate: 2017-01-01\nsummary: *t\n---\nbody\n",
     ["2: YAML anchors and aliases (& and *) are not allowed"]),
    ("python-tag", "---\ntitle: !!python/object/apply:os.system [ls]\ntype: update\ndate: 2017-01-01\n---\nbody\n",
     ["2: YAML syntax error: could not determine a constructor for the tag "
      "'tag:yaml.org,2002:python/object/apply:os.system'"]),
]


@pytest.mark.parametrize("name, text, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_entry_is_reported_with_line(site, name, text, expected):
    site.write(f"content/{name}.md", text)
    problems = site.check()
    assert [f"{p.line}: {p.message}" for p in problems] == sorted(expected, key=lambda s: (int(s.split(":")[0]), s))
    assert all(p.path == f"content/{name}.md" for p in problems)


def test_all_problems_in_all_files_are_reported_at_once(site):
    site.write("content/a.md", GOOD.replace("type: update", "type: nope"))
    site.write("content/b.md", GOOD.replace("2017-01-01", "soon"))
    site.write("content/c/d.md", "no front matter")
    problems = site.check()
    assert [(p.path, p.line) for p in problems] == [("content/a.md", 3), ("content/b.md", 4), ("content/c/d.md", 1)]


def test_file_name_must_be_a_slug(site):
    site.write("content/Bad Name.md", GOOD)
    [problem] = site.check()
    assert problem.message.startswith("the file name 'Bad Name.md' must be lowercase letters, digits and hyphens")


def test_language_suffix_must_match_lang(site):
    site.write("content/raid.az.md", GOOD.replace("---\nbody", "lang: ru\n---\nbody"))
    [problem] = site.check()
    assert problem.message == "lang 'ru' does not match the file name, which ends in .az"


def test_two_entries_claiming_one_id(site):
    site.write("content/a.md", GOOD.replace("---\nbody", 'id: "tag:x.org,2017:a"\n---\nbody'))
    site.write("content/b.md", GOOD.replace("---\nbody", 'id: "tag:x.org,2017:a"\n---\nbody'))
    [problem] = site.check()
    assert str(problem) == "content/b.md:5: id 'tag:x.org,2017:a' is already claimed by content/a.md"


def test_two_entries_claiming_one_page(site):
    site.write("content/2017/raid.md", GOOD.replace("---\nbody", 'id: "tag:x.org,2017:one"\n---\nbody'))
    site.write("content/old/raid.md", GOOD.replace("---\nbody", 'id: "tag:x.org,2017:two"\n---\nbody'))
    [problem] = site.check()
    assert str(problem) == "content/old/raid.md:1: page 'en/2017/01/raid/index.html' is already claimed by content/2017/raid.md"


def test_two_translations_in_one_language(site):
    site.write("content/a.md", GOOD.replace("---\nbody", "key: raid\n---\nbody"))
    site.write("content/b.md", GOOD.replace("---\nbody", "key: raid\n---\nbody"))
    [problem] = site.check()
    assert problem.message == "key and lang raid/en is already claimed by content/a.md"


def test_entry_fields_are_read(site):
    site.write("content/images/x.png", b"\x89PNG")
    site.write("content/2017/write.az.md", entry_text(
        title="Prezidentə yazın", type="alert", date="2017-09-25T10:00", key="write",
        tags="[Police, baku, police]", summary="'Qısa.'", image="/images/x.png", image_alt="Şəkil",
        expires="2017-10-23", body="Mətn.\x00\x0b",
        action="\n  label: Yaz\n  url: https://example.org/act\n  deadline: 2017-10-09T23:59:00+04:00"
               "\n  targets:\n    - name: Ilham Aliyev\n      title: President\n  asks:\n    - Release them",
    ))
    [entry] = load_rendered(site.config)[0]
    assert (entry.slug, entry.lang, entry.type, entry.key) == ("write", "az", "alert", "write")
    assert entry.date.isoformat() == "2017-09-25T10:00:00+04:00"  # no offset: the site's zone
    assert entry.id == "tag:news.example.org,2017-09-25:az/write"
    assert entry.tags == ("police", "baku")
    assert entry.body.strip() == "Mətn."  # characters XML forbids are gone
    assert entry.action.targets[0].name == "Ilham Aliyev" and entry.action.asks == ("Release them",)
    assert entry.line_of("action") == 11


def test_bad_input_never_raises_anything_but_editor_error(site):
    hostile = [
        b"", b"\x00\x01\x02", b"---\n" + b"[" * 5000 + b"\n---\nx", b"---\n:\n---\nx", b"---\n? [a, b]\n: c\n---\nx",
        b"---\ntitle: A\ntype: update\ndate: 9999-99-99T99:99\n---\nx", b"\xef\xbb\xbf---\r\ntitle: A\r\n---\r\n",
        b"---\ntitle: A\ntype: update\ndate: 2017-01-01\naction: [1, 2]\nretracted: yes\n---\nx",
        b"---\n1: 2\n---\nx", b"---\ntitle: A\ntype: update\ndate: 2017-01-01T10:00:00+99:00\n---\nx",
    ]
    for index, data in enumerate(hostile):
        site.write(f"content/h{index}.md", data)
    problems = site.check()
    assert {p.path for p in problems} == {f"content/h{i}.md" for i in range(len(hostile))}


@pytest.mark.parametrize("body, line, message", [
    ("Intro.\n\n" + "[" * 150, 8, "this paragraph has 150 unmatched '[', too many to render; close them or write \\["),
    ("[x](" * 120, 6, "this paragraph has 120 unmatched '(', too many to render; close them or write \\("),
    ("ok\n\n" + "<a " * 200, 8, "this paragraph has 200 unmatched '<', too many to render; close them or write \\<"),
    ("a\n" + ">" * 150 + " deep", 7, "this line is nested 151 levels deep; at most 100 can be rendered"),
])
def test_text_markdown_cannot_render_in_time_is_reported(site, body, line, message):
    site.write("content/slow.md", GOOD.replace("body\n", body + "\n"))
    assert [(p.line, p.message) for p in site.check() if not p.warning] == [(line, message)]


def test_the_quick_look_at_a_body_finds_what_looking_at_every_paragraph_finds():
    """too_complex passes over a body with few openers and no deep line; a look at each paragraph finds the same."""
    import random

    from publisher.content import BRACKETS, MAX_DEPTH, MAX_UNMATCHED, too_complex

    def every_paragraph(body):
        offset = 0
        for block in body.split("\n\n"):
            for opener, closer in BRACKETS:
                if block.count(opener) - block.count(closer) > MAX_UNMATCHED:
                    yield offset, opener
            for number, line in enumerate(block.split("\n")):
                if len(line) - len(line.lstrip(" >\t")) > MAX_DEPTH:
                    yield offset + number, "deep"
                    break
            offset += block.count("\n") + 2

    rng = random.Random(8)
    pieces = ["[", "]", "(", ")", "<", ">", " ", "\t", "\n", "\n\n", "x", "> " * 30, "[" * 40, "(" * 60, " " * 99]
    bodies = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    bodies += ["a\n" + " " * 100 + "x", "a\n" + " " * 101 + "x", "[" * 101, "[" * 100, "\n\n".join(["[" * 60] * 2)]
    found = 0
    for body in bodies:
        quick = [(offset, message.split("'")[1] if "'" in message else "deep") for offset, message in too_complex(body)]
        assert quick == list(every_paragraph(body)), body
        found += bool(quick)
    assert 100 < found < len(bodies) - 100  # both kinds of body were tried


def test_many_well_formed_links_are_fine(site):
    body = " ".join(f"[a{i}](https://x.org/{i}) (see [{i}])" for i in range(500))
    site.write("content/links.md", GOOD.replace("body\n", body + "\n"))
    assert [p for p in site.check() if not p.warning] == []


def test_hidden_files_and_backups_are_ignored(site):
    site.write("content/.#draft.md", "junk")
    site.write("content/_notes/x.md", "junk")
    site.write("content/ok.md", GOOD)
    assert [p for p in site.check() if not p.warning] == []


def test_the_place_digest_follows_what_the_sitemap_shows_and_not_the_body_or_title(site):
    """The sitemap keys on it: an edit of the body or the title leaves it, any field the sitemap shows changes it."""
    from publisher.content import place_digest

    def place(**fields) -> bytes:
        site.entry("2023/a.md", **{"title": "A", "date": "2023-07-20T10:00:00+04:00", "tags": "[police]", **fields})
        (entry,), _ = load_rendered(site.config)
        assert entry.place == place_digest(entry)  # made with the entry, and kept by the cache
        moved = dataclasses.replace(entry, date=entry.date + timedelta(days=1))
        assert moved.place == place_digest(moved) != entry.place  # a copy makes its own
        return entry.place

    first = place(body="First words.")
    assert place(body="Other words entirely.") == first and place(title="B", summary="'Another.'") == first
    changed = [place(date="2023-08-20T10:00:00+04:00"), place(tags="[police, courts]"), place(key="a-key"),
               place(updated="2023-07-21T10:00:00+04:00", correction="Fixed a name."), place(lang="az"),
               place(retracted="{date: 2023-07-22T10:00:00+04:00, reason: Wrong}")]
    assert first not in changed and len(set(changed)) == len(changed)


def test_a_tag_named_twice_is_kept_once(site):
    """The tag index and the tag counts rely on it: an entry is listed once under each of its tags."""
    site.entry("2023/a.md", tags="[police, Police, baku, police]")
    (entry,), _ = load_rendered(site.config)
    assert entry.tags == ("police", "baku")
