"""Hostile inputs through the real command line: a clear `path:line: message` report or a clean build, never a
traceback, a hang or a half-written output/; and what a clean build of hostile-but-valid content must look like."""

from __future__ import annotations

import concurrent.futures
import email
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from email import policy
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import feedparser
import lxml.etree
import lxml.html
import pytest

from conftest import CONFIG, ScratchSite, entry_text
from safety import html_fragments, unsafe_parts

NOW = "2026-11-22T12:00:00Z"
BASE_URL = "https://news.example.org/"
PROBLEM_LINE = re.compile(r"^[^\s:][^:]*:\d+: \S")
COUNT_LINE = re.compile(r"^\d+ errors?(, \d+ warnings?)?$")
# XML 1.0 forbids C0 controls but tab, LF and CR, lone surrogates and U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
TRACKING = re.compile(r"^(utm_|fbclid$|gclid$|mc_eid$|mc_cid$|yclid$|_hsenc$|igshid$)")
TEXT_SUFFIXES = (".html", ".xml", ".atom", ".rss", ".json", ".eml", ".txt")


def assert_clean_outcome(result, command: str) -> None:
    """Either success, or only `path:line: message` lines and a count, exit 1; never a traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, f"{command} crashed:\n{output[-3000:]}"
    assert result.returncode in (0, 1), f"{command} exited {result.returncode}:\n{output[-2000:]}"
    if result.returncode == 1:
        lines = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if line.strip()]
        assert any(COUNT_LINE.match(line) for line in lines), f"{command}: no error count in\n{output[-2000:]}"
        odd = [line for line in lines if not PROBLEM_LINE.match(line) and not COUNT_LINE.match(line)]
        assert not odd, f"{command}: lines that are not 'path:line: message': {odd[:5]}"


def output_problems(output: Path) -> list[str]:
    """Check every built file: parses as its kind, no XML-forbidden characters, nothing unsafe."""
    found = []
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        rel = path.relative_to(output).as_posix()
        data = path.read_bytes()
        if path.suffix in TEXT_SUFFIXES:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                found.append(f"{rel}: not UTF-8 ({exc})")
                continue
            bad = XML_FORBIDDEN.search(text)
            if bad and path.suffix != ".txt":
                found.append(f"{rel}: forbidden character {bad.group()!r} near {text[max(0, bad.start() - 40):bad.start()]!r}")
        try:
            found += [f"{rel}: {p}" for p in parse_problems(path, data)]
            found += [f"{rel}: {p}" for fragment in html_fragments(path) for p in unsafe_parts(fragment, BASE_URL)]
        except Exception as exc:  # any parser error is a finding, with the file named
            found.append(f"{rel}: {type(exc).__name__}: {exc}")
    return found


def parse_problems(path: Path, data: bytes) -> list[str]:
    """Parse a built file as what its suffix says and return what a strict reader objects to."""
    if path.suffix in (".xml", ".atom", ".rss"):
        lxml.etree.fromstring(data)
        if path.suffix != ".xml":
            feed = feedparser.parse(data)
            return [f"feedparser bozo: {feed.bozo_exception}"] if feed.bozo else []
    elif path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".eml":
        message = email.message_from_bytes(data, policy=policy.default)
        problems = [f"defect {d!r}" for d in message.defects]
        problems += [f"line over 998 octets ({len(line)})" for line in data.split(b"\r\n") if len(line) > 998]
        problems += ["bare LF: lines must end in CRLF"] * (data.count(b"\n") != data.count(b"\r\n"))
        problems += [f"unexpected header {name}" for name in message.keys() if name.lower() in ("bcc", "cc", "x-evil")]
        for part in message.walk():
            problems += [f"defect {d!r}" for d in part.defects]
            if not part.is_multipart():
                part.get_content()
        return problems
    elif path.suffix == ".html":
        doc = lxml.html.document_fromstring(data)
        return [f"<script> in {path.name}"] * len(doc.xpath("//script"))
    return []


# ---------------------------------------------------------------------------------------------------------------
# 1. The hostile corpus. Each case writes its files beside one valid entry, so a success really builds something.

E = entry_text


def front(*lines: str, body: str = "Body text.") -> str:
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body + "\n"


def campaign(url: str, **fields) -> str:
    return E(type="campaign", action=f"{{label: Act now, url: {json.dumps(url)}}}", **fields)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def symlink_to(target: str):
    return lambda path: path.symlink_to(target)


def symlink_loop(path: Path) -> None:
    path.mkdir()
    (path / "loop").symlink_to(path, target_is_directory=True)
    (path / "up").symlink_to("..", target_is_directory=True)


YAML_BOMB = "\n".join(
    [f'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)])

CORPUS: dict[str, dict] = {
    # size and shape
    "5 MB body": {"content/h.md": E(body="word " * 1_000_000)},
    "10,000-line front matter": {"content/h.md": front("title: x", "type: update", "date: 2023-01-01T00:00:00Z",
                                                       *(f"k{i}: v" for i in range(10_000)))},
    "1 MB line": {"content/h.md": E(body="x" * 1_000_000)},
    "5000 nested quotes": {"content/h.md": E(body=">" * 5000 + " deep")},
    "2000 indented list levels": {"content/h.md": E(body="\n".join("  " * i + "- item" for i in range(2000)))},
    "1000 list markers on a line": {"content/h.md": E(body="- " * 1000 + "x")},
    "1000 ordered markers": {"content/h.md": E(body="1. " * 1000 + "x")},
    "mixed quote and list nesting": {"content/h.md": E(body="> - " * 300 + "x")},
    "50,000 open emphasis": {"content/h.md": E(body="*a" * 50_000)},
    "mixed emphasis": {"content/h.md": E(body="_a" * 30_000 + "**b" * 20_000)},
    "200 KB table": {"content/h.md": E(body="| a | b |\n|---|---|\n" + "| x | y |\n" * 20_000)},
    "reference bomb": {"content/h.md": E(body="\n".join(f"[l{i}]: https://example.org/{i}" for i in range(3000))
                                         + "\n\n" + " ".join(f"[x][l{i % 3000}]" for i in range(10_000)))},
    "bracket bomb": {"content/h.md": E(body="[" * 50_000 + "x" + "](http://a)" * 5000)},
    "HTML comment bomb": {"content/h.md": E(body="<!-- " * 50_000 + "x")},
    "unclosed comment": {"content/h.md": E(body="<!-- never closed\n\n" + "text\n\n" * 1000)},
    # characters
    "control characters in title and body": {"content/h.md": E(title="a\x00b\x07c\x1b[31m", body="a\x00b\x01c\x0bd\x1be\x7f")},
    "control characters in tags": {"content/h.md": E(tags='["a\\0b", "c\\x07"]')},
    "control characters in key": {"content/h.md": E(key='"a\\0/../b"')},
    "control characters in action": {"content/h.md": E(type="campaign", action='{label: "A\\0\\x1b", url: "https://x.org/\\0"}')},
    "control characters in targets and asks": {"content/h.md": E(
        type="alert", action='{label: A, url: "https://x.org", targets: [{name: "\\0", address: "a\\r\\nBcc: x@y"}], '
                             'asks: ["\\x07"]}')},
    "RTL override in title": {"content/h.md": E(title="abc\u202egnp.exe", summary="'\u202e reversed'")},
    "NEL and line separators": {"content/h.md": E(title="a\u0085b\u2028c\u2029d", body="x\u2028y\u0085z")},
    "zero-width joiner in a tag": {"content/h.md": E(title="a\u200db", tags='["a\u200db"]')},
    "homoglyph tags": {"content/h.md": E(tags='["\u0430dmin", "admin", "\u0391\u0392"]')},
    "astral plane": {"content/h.md": E(title="\U0001f3f3\ufe0f\u200d\U0001f308 \U0001d518 \U0010ffff", body="\U0001d54f \U0001f3f3")},
    "surrogate escape": {"content/h.md": front('title: "a\\ud800b"', "type: update", "date: 2023-01-01T00:00:00Z")},
    "noncharacter U+FFFE": {"content/h.md": front('title: "a\\ufffeb"', "type: update", "date: 2023-01-01T00:00:00Z",
                                                   body="x\ufffey\uffff")},
    "invalid UTF-8 in the middle": {"content/h.md": E().encode() + b"more \xff\xfe text\n"},
    "BOM": {"content/h.md": b"\xef\xbb\xbf" + E().encode()},
    "UTF-16 file": {"content/h.md": E().encode("utf-16")},
    "CRLF": {"content/h.md": E().replace("\n", "\r\n")},
    "lone CR": {"content/h.md": E().replace("\n", "\r")},
    "empty file": {"content/h.md": ""},
    "only an opening fence": {"content/h.md": "---\n"},
    "front matter is a list": {"content/h.md": "---\n- a\n---\nx\n"},
    "YAML alias bomb": {"content/h.md": front(YAML_BOMB, "title: x", "type: update", "date: 2023-01-01T00:00:00Z", "tags: *a7")},
    "YAML python tag": {"content/h.md": front("title: !!python/object/apply:os.system ['echo PWNED']", "type: update",
                                              "date: 2023-01-01T00:00:00Z")},
    "YAML deep nesting": {"content/h.md": front("title: x", "type: update", "date: 2023-01-01T00:00:00Z",
                                                "tags: " + "[" * 5000 + "]" * 5000)},
    "YAML merge key": {"content/h.md": front("<<: {title: x}", "type: update", "date: 2023-01-01T00:00:00Z")},
    "whitespace-only title": {"content/h.md": E(title="   ")},
    "title that is a list": {"content/h.md": front("title: [1, 2]", "type: update", "date: 2023-01-01T00:00:00Z")},
    "title .nan": {"content/h.md": front("title: .nan", "type: update", "date: 2023-01-01T00:00:00Z")},
    "huge integer title": {"content/h.md": front("title: " + "9" * 5000, "type: update", "date: 2023-01-01T00:00:00Z")},
    "tags inf and nan": {"content/h.md": E(tags="[.inf, -.inf, .nan, 1e400]")},
    # dates
    "date that is a huge integer": {"content/h.md": E(date="9" * 5000)},
    "date in year 1 UTC": {"content/h.md": E(date="0001-01-01T00:00:00Z")},
    "date in year 1 local": {"content/h.md": E(date="0001-01-01T00:00:00")},
    "date in year 1 at +23:59": {"content/h.md": E(date="0001-01-01T00:00:00+23:59")},
    "date in year 9999 UTC": {"content/h.md": E(date="9999-12-31T23:59:59Z")},
    "date in year 9999 local": {"content/h.md": E(date="9999-12-31T23:59:59")},
    "offset +23:59": {"content/h.md": E(date="2017-01-01T10:00:00+23:59")},
    "offset +99:00": {"content/h.md": E(date="2017-01-01T10:00:00+99:00")},
    "date 2017-02-30": {"content/h.md": E(date="2017-02-30T10:00:00Z")},
    "expires in year 9999": {"content/h.md": campaign("https://x.org/", expires="9999-12-31T23:59:59+00:00")},
    "deadline in year 1": {"content/h.md": E(type="campaign", action='{label: A, url: "https://x.org/", deadline: "0001-01-01T00:00:00Z"}')},
    "updated in year 9999": {"content/h.md": E(updated="9999-12-31T23:59:59Z", correction="fixed")},
    # URLs and names
    "action.url with user:pass": {"content/h.md": campaign("https://user:pass@x.org/")},
    "action.url with a newline": {"content/h.md": campaign("https://x.org/\nBcc: a@b.org")},
    "action.url breaking out of the attribute": {"content/h.md": campaign('https://x.org/"><script>alert(1)</script>')},
    "action.url javascript:": {"content/h.md": campaign(" JaVaScRiPt:alert(1)")},
    "title with ]]> --> </script>": {"content/h.md": E(title="]]> --> </script> <![CDATA[ x")},
    "tags with path parts": {"content/h.md": E(tags='["../../etc", "..", ".", "a/b", "index.html"]')},
    "key with path parts": {"content/h.md": E(key='"../../etc/passwd"')},
    "lang with path parts": {"content/h.md": E(lang="'../x'")},
    "id with markup": {"content/h.md": E(id='"tag:x,2020:]]><x>"')},
    "image escaping the site": {"content/h.md": E(image="/../../publisher.toml", image_alt="x")},
    "missing image": {"content/h.md": E(image="/images/missing.png", image_alt="x")},
    "remote image field": {"content/h.md": E(image="https://evil.example/x.png", image_alt="x")},
    "body image escaping the site": {"content/h.md": E(body="![x](/../../publisher.toml) ![y](../../../etc/passwd)")},
    "editor HTML": {"content/h.md": E(body='<script>alert(1)</script><img src=x onerror=alert(1)>'
                                         '<a href="javascript:alert(1)">x</a><iframe src="https://evil.example/"></iframe>'
                                         '<svg onload=alert(1)></svg><style>body{}</style><form action=x><input></form>')},
    # file system
    "a file named ..md": {"content/..md": E()},
    "a folder named index.html": {"content/index.html/h.md": E()},
    "an asset named like a generated page": {"content/en/feed.atom": "x"},
    "RTL override in a file name": {"content/h\u202egpj.md": E()},
    "newline in a file name": {"content/h\nb.md": E()},
    "control character in a file name": {"content/h\x01b.md": E()},
    "an entry that is a FIFO": {"content/h.md": fifo},
    "an asset that is a FIFO": {"content/files/h.txt": fifo},
    "a broken symlink": {"content/h.md": symlink_to("/nonexistent/h.md")},
    "symlink loops": {"content/loops": symlink_loop},
    "entry symlinked to /etc/passwd": {"content/h.md": symlink_to("/etc/passwd")},
    # the site itself
    "no content folder": {"content": None},
    "empty content folder": {"content": "dir"},
    "empty publisher.toml": {"publisher.toml": ""},
    "publisher.toml with a BOM": {"publisher.toml": b"\xef\xbb\xbf" + CONFIG.encode()},
    "publisher.toml with NUL": {"publisher.toml": CONFIG + "\x00"},
    "publisher.toml not UTF-8": {"publisher.toml": CONFIG.encode() + b"# \xff\n"},
    "publisher.toml missing": {"publisher.toml": None},
    "publisher.toml with a huge integer": {"publisher.toml": CONFIG.replace("[newsletter]", "[feeds]\nlimit = " + "9" * 5000
                                                                          + "\n\n[newsletter]")},
    "site title with NUL and RTL override": {"publisher.toml": CONFIG.replace('en = "Test Alliance"',
                                                                             'en = "Test\\u0000 \\u202eAlliance"')},
    "base_url breaking out of an attribute": {"publisher.toml": CONFIG.replace(
        'base_url = "https://news.example.org/"', 'base_url = "https://news.example.org/\\"><script>x</script>/"')},
    "base_url with user:pass": {"publisher.toml": CONFIG.replace('base_url = "https://', 'base_url = "https://u:p@')},
    "publisher.toml with nan": {"publisher.toml": CONFIG.replace("[newsletter]", "[feeds]\nlimit = nan\n\n[newsletter]")},
}

# Inputs whose outputs are too big to re-parse within the time budget; their outcome is still checked.
HEAVY = {"5 MB body", "1 MB line", "200 KB table", "50,000 open emphasis", "mixed emphasis", "reference bomb"}

BUGS: dict[str, str] = {}  # case name -> 'bug: ...' for an input a known product bug still fails


def write_case(site, files: dict) -> None:
    for rel, data in files.items():
        path = site.root / rel
        if data is None:
            if path.is_file():
                path.unlink()
            continue
        if data == "dir":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(data):
            data(path)
        else:
            path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))


def corpus_params():
    for name, files in CORPUS.items():
        marks = [pytest.mark.xfail(strict=True, reason=BUGS[name])] if name in BUGS else []
        yield pytest.param(name, files, id=name, marks=marks)


def run_case(site, name: str, files: dict) -> dict:
    """Write one case into its own site, run check and build, and check what the build wrote."""
    if "content" not in files:
        site.entry("2023/valid.md", title="A valid entry")
    write_case(site, files)
    outcome = {"check": site.cli("check", "--now", NOW), "build": site.cli("build", "--now", NOW), "outputs": []}
    if outcome["build"].returncode == 0 and name not in HEAVY:
        outcome["outputs"] = output_problems(site.output)
    return outcome


@pytest.fixture(scope="module")
def corpus_outcomes(tmp_path_factory) -> dict[str, concurrent.futures.Future]:
    """Run the whole corpus four cases at a time, so the file stays fast on two cores."""
    sites = {}
    for name in CORPUS:
        sites[name] = ScratchSite(tmp_path_factory.mktemp("hostile") / "site")
        sites[name].write("publisher.toml", CONFIG)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {name: pool.submit(run_case, sites[name], name, files) for name, files in CORPUS.items()}
        concurrent.futures.wait(futures.values())
    return {name: (sites[name], future) for name, future in futures.items()}


@pytest.mark.parametrize(("name", "files"), list(corpus_params()))
def test_hostile_input_gives_a_report_or_a_clean_build(corpus_outcomes, name, files):
    site, future = corpus_outcomes[name]
    outcome = future.result()  # re-raises a hang (TimeoutExpired) or a harness error for this case only
    for command in ("check", "build"):
        assert_clean_outcome(outcome[command], command)
    if outcome["build"].returncode == 0:
        assert outcome["check"].returncode == 0, "check failed where build succeeded:\n" + outcome["check"].stderr[-2000:]
        assert outcome["outputs"] == []
    else:
        assert not site.output.exists() or not any(site.output.rglob("*.html")), "a failed build wrote output/"


def test_a_failed_build_leaves_the_previous_output_byte_for_byte(site):
    site.entry("2023/valid.md", title="A valid entry")
    assert site.cli("build", "--now", NOW).returncode == 0
    before = site.tree()
    for bad in (E(date="nonsense"), E(title="x", key='"../x"'), E(body="- " * 1000 + "x")):
        site.write("content/2023/bad.md", bad)
        result = site.cli("build", "--now", NOW)
        assert_clean_outcome(result, "build")
        assert result.returncode == 1
        assert site.tree() == before


def test_an_action_url_that_is_not_a_uri_is_reported(site):
    urls = {"newline": "https://x.org/a\nb", "space": "https://x.org/a b", "quote": 'https://x.org/"><b>',
            "credentials": "https://user:secret@x.org/"}
    for name, url in urls.items():
        site.write(f"content/2023/{name}.md", campaign(url))
    result = site.cli("check", "--now", NOW)
    assert_clean_outcome(result, "check")
    reported = {name for name in urls if re.search(rf"^content/2023/{name}\.md:\d+: (?!warning)", result.stderr, re.M)}
    assert reported == set(urls)


def test_an_entry_with_hundreds_of_tags_does_not_hang_the_build(site):
    site.entry("2023/tagged.md", title="Tagged", tags="[" + ", ".join(f"t{i}" for i in range(600)) + "]")
    try:
        result = subprocess.run([sys.executable, "-m", "publisher", "build", "--now", NOW], cwd=site.root,
                                capture_output=True, text=True, timeout=12)
    except subprocess.TimeoutExpired:
        pytest.fail("build took over 12 s for one entry with 600 tags")
    assert_clean_outcome(result, "build")


@pytest.mark.parametrize("args", [
    ("check", "--now", "9999-12-31T23:59:59Z"), ("build", "--now", "9999-12-31T23:59:59-23:59"),
    ("check", "--now", "0001-01-01T00:00:00+23:59"), ("build", "--now", "0001-01-01T00:00:00Z"),
    ("new", "update", "Edge", "--now", "0001-01-01T00:00:00Z"),
    ("new", "update", "Edge", "--now", "9999-12-31T23:59:59Z"),
    ("schedule", "--once", "--now", "9999-12-31T23:59:59Z"),
    ("schedule", "--once", "--now", "0001-01-01T00:00:00Z"),
], ids=lambda args: " ".join(args))
def test_a_clock_at_the_edge_of_the_calendar_gives_a_report(site, args):
    site.entry("2023/valid.md", title="A valid entry")
    result = site.cli(*args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-2000:]
    assert result.returncode in (0, 1, 2), output[-2000:]


def test_an_unreadable_entry_is_reported_with_its_path(site):
    site.entry("2023/valid.md", title="A valid entry")
    locked = site.entry("2023/locked.md", title="Locked")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user (root) can read a chmod 000 file")
        for command in ("check", "build"):
            result = site.cli(command, "--now", NOW)
            assert_clean_outcome(result, command)
            assert result.returncode == 1 and "content/2023/locked.md:1:" in result.stderr
    finally:
        locked.chmod(0o644)


def test_a_symlink_out_of_content_is_never_published(site):
    site.entry("2023/valid.md", title="A valid entry")
    (site.root / "content/files").mkdir(parents=True)
    (site.root / "content/files/passwd.txt").symlink_to("/etc/passwd")
    (site.root / "secret.pdf").write_bytes(b"%PDF-1.4 private")
    (site.root / "content/files/report.pdf").symlink_to(site.root / "secret.pdf")
    result = site.cli("build", "--now", NOW)
    assert_clean_outcome(result, "build")
    published = site.tree() if site.output.exists() else {}
    assert not any(name.startswith("files/") for name in published), sorted(published)
    if result.returncode == 1:
        assert "content/files/passwd.txt:1:" in result.stderr


def test_no_script_reaches_the_archive_through_a_copied_file(site):
    site.entry("2023/valid.md", title="A valid entry")
    site.write("content/page.html", "<p>hi</p><script src='https://evil.example/x.js'></script>")
    site.write("content/images/logo.svg", "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'>"
                                          "<script>alert(1)</script></svg>")
    result = site.cli("build", "--now", NOW)
    assert_clean_outcome(result, "build")
    if result.returncode == 0:
        scripted = [name for name, data in site.tree().items() if re.search(rb"<script|onload=", data, re.I)]
        assert scripted == []


def test_a_subscriber_list_in_content_is_not_published(site):
    site.entry("2023/valid.md", title="A valid entry")
    site.write("content/subscribers.csv", "address,language\nactivist@example.net,az\n")
    result = site.cli("build", "--now", NOW)
    assert_clean_outcome(result, "build")
    assert not any(b"activist@example.net" in data for data in (site.tree() if site.output.exists() else {}).values())


# ---------------------------------------------------------------------------------------------------------------
# 2. Hostile-but-valid content builds into files every strict reader accepts, with nothing that runs or tracks.

TRACKED = "https://example.org/report?utm_source=x&fbclid=y&id=3"


def yaml_fields(**fields) -> list[str]:
    """Return front-matter lines with every string quoted as JSON, which YAML reads as is."""
    return [f"{key}: {value if key in ('action', 'tags') else json.dumps(value)}" for key, value in fields.items()]


def hostile_valid(site) -> None:
    """Write entries that are valid but carry everything a careless renderer would pass through."""
    nasty = "</script> ]]> --> {{ 7*7 }} {% raw %} <b>x</b> \u202etxt.exe & \"q\" 'a'"
    site.write("content/2026/nasty.md", front(*yaml_fields(
        title=f"Nasty {nasty}", type="update", date="2026-11-11T10:00:00+04:00", tags="[police, baku]",
        summary=f"Summary {nasty}"),
        body=f"Para {nasty}\n\n<script>alert(1)</script>\n\n[js](javascript:alert(1)) [data](data:text/html,x) "
             f"[track]({TRACKED})\n\n![remote](https://evil.example/pixel.gif)\n\n"
             f"<img src=\"//evil.example/p.png\" onerror=\"alert(1)\">\n\n"
             f"<a href=\"https://example.org/\" onclick=\"x()\" style=\"background:url(https://evil.example/)\">s</a>"
             f"\n\n```\n</code></pre><script>alert(2)</script>\n```\n\n{{{{ site }}}} {{% for x in y %}}"))
    site.write("content/2026/nasty.ru.md", front(*yaml_fields(
        title="Кампания \u202e{{ x }}", type="campaign", date="2026-11-10T10:00:00+04:00", key="nasty-campaign",
        lang="ru", action='{label: "Act <now> & ]]>", url: "https://x.org/act?a=1&b=2&utm_campaign=z"}'),
        body="Тело с <script>alert(1)</script> и ]]>."))
    site.write("content/2026/nasty-alert.md", front(*yaml_fields(
        title="Alert ]]> </title><script>x</script>", type="alert", date="2026-11-12T10:00:00+04:00",
        action='{label: "Write <now>", url: "mailto:office@example.gov?subject=Free%20them", '
               'deadline: "2026-12-01T00:00:00+04:00", targets: [{name: "Minister <b>", title: "&amp;", '
               'address: "1 Street ]]>"}], asks: ["Release them </script>"]}'),
        body="Alert body with \u202e override and <iframe src=\"https://evil.example/\"></iframe>."))
    site.write("content/images/photo.png", png())
    site.write("content/2026/pictured.md", front(*yaml_fields(
        title="Pictured\r\nBcc: evil@x.org", type="update", date="2026-11-09T10:00:00+04:00",
        image="/images/photo.png", image_alt='" onerror="alert(1)" x="', updated="2026-11-13T10:00:00+04:00",
        correction="Corrected <script>alert(1)</script> ]]>"),
        body='![" onerror="alert(2)](/images/photo.png "t\" onload=\"x")\n\nSee <https://example.org/a?b=1&c=2>.'))
    site.write("content/2026/withdrawn.md", front(*yaml_fields(
        title="Withdrawn", type="update", date="2026-11-09T11:00:00+04:00"),
        "retracted: {date: '2026-11-12T10:00:00+04:00', reason: \"<script>alert(1)</script> ]]> \\u0007\"}",
        body="Gone."))


def png() -> bytes:
    """Return a small real PNG with an EXIF block, as a phone would save it."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    Image.new("RGB", (8, 6), (200, 30, 90)).save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


@pytest.fixture
def built_hostile(site):
    hostile_valid(site)
    result = site.cli("build", "--now", NOW)
    assert result.returncode == 0, result.stderr
    return site


def test_every_output_of_hostile_valid_content_parses_and_is_safe(built_hostile):
    tree = built_hostile.tree()
    assert any(name.endswith(".eml") for name in tree) and any(name.endswith(".atom") for name in tree)
    assert any(name.startswith("alerts/") for name in tree)
    assert b"PhoneMaker" not in tree["images/photo.png"]  # published without its EXIF
    assert output_problems(built_hostile.output) == []


def test_no_output_has_an_element_that_runs_code(built_hostile):
    for name, data in built_hostile.tree().items():
        if name.endswith((".html", ".eml", ".atom", ".rss", ".json", ".xml")):
            for fragment in html_fragments(built_hostile.output / name):
                doc = lxml.html.fromstring(f"<div>{fragment}</div>")
                assert not doc.xpath("//script|//iframe|//*[@onerror or @onclick or @onload]"), name
                hrefs = [a.get("href", "") for a in doc.iter("a")]
                assert not [h for h in hrefs if urlsplit(h.strip()).scheme.lower() in ("javascript", "data", "vbscript")]


def test_every_src_points_at_the_site(built_hostile):
    for name in built_hostile.tree():
        for fragment in html_fragments(built_hostile.output / name):
            for src in lxml.html.fromstring(f"<div>{fragment}</div>").xpath("//@src|//@srcset|//@poster|//@background"):
                absolute = urlsplit(src).scheme or src.startswith("//")
                assert not absolute or src.startswith(BASE_URL), f"{name}: {src}"


def test_the_editor_gets_warned_about_tracking_parameters(site):
    hostile_valid(site)
    result = site.cli("check", "--now", NOW)
    assert_clean_outcome(result, "check")
    assert re.search(r"content/2026/nasty\.md:\d+: warning: tracking parameters fbclid, utm_source", result.stdout + result.stderr)


def test_no_output_link_carries_tracking_parameters(built_hostile):
    tracked = []
    for name in built_hostile.tree():
        for fragment in html_fragments(built_hostile.output / name):
            for href in lxml.html.fromstring(f"<div>{fragment}</div>").xpath("//@href"):
                keys = [key for key, _ in parse_qsl(urlsplit(href).query, keep_blank_values=True)]
                if any(TRACKING.match(key) for key in keys):
                    tracked.append(f"{name}: {href}")
    assert tracked == []


# ---------------------------------------------------------------------------------------------------------------
# 3. A real browser loads every page of the built archive and asks no other host for anything.

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


CANARY = '<!doctype html><title>canary</title><img src="http://tracker.example/pixel.gif" alt="">'


@pytest.fixture
def served(built_hostile, tmp_path):
    """Serve a copy of output/ (plus a canary page) from a threaded server on 127.0.0.1; return its origin."""
    root = tmp_path / "served"
    shutil.copytree(built_hostile.output, root)
    (root / "canary-outside-output.html").write_text(CANARY, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromedriver in /usr/bin")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                     # Every other host is unreachable, as for a reader behind a censor's resolver.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


def test_no_page_asks_another_host_for_anything(built_hostile, served, browser):
    pages = sorted(name for name in built_hostile.tree() if name.endswith(".html"))
    assert any(p.startswith("newsletter/") for p in pages) and any(p.startswith("alerts/") for p in pages)
    browser.execute_cdp_cmd("Network.enable", {})
    # Block what no local page may use, so a leak the log shows could still not reach the network.
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["https://*", "ws://*", "wss://*", "ftp://*"]})
    browser.get("about:blank")
    requested_urls(browser)  # drop what the browser's own start page did
    browser.get(f"{served}/canary-outside-output.html")  # proves the log catches an off-site request
    assert "http://tracker.example/pixel.gif" in requested_urls(browser)
    elsewhere = {}
    for page in pages:
        browser.get(f"{served}/{page}")
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # wake lazy images
        others = [url for url in requested_urls(browser)
                  if not url.startswith(served + "/") and not url.startswith(("data:", "about:", "chrome:"))]
        if others:
            elsewhere[page] = others
        assert browser.execute_script("return document.querySelectorAll('script').length") == 0, page
    assert elsewhere == {}
