"""The archive as a mirror sees it: every page parses, and every link, stylesheet and image resolves,
from the built tree and over HTTP from a sub-path on another host."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import html5lib
import lxml.html
import pytest

from archive_site import populate
from conftest import REPO, ScratchSite

BASE = "https://news.example.org/"
LINKING = (("a", "href"), ("link", "href"), ("img", "src"))
# The 404 page is served at any depth, so its links start at the site path (tested separately).
SERVED_ANYWHERE = "404.html"


@pytest.fixture
def built(site):
    populate(site).build()
    return site


@pytest.fixture
def sample(tmp_path):
    """The repository's sample site, built at a fixed moment."""
    root = tmp_path / "sample"
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    scratch = ScratchSite(root)
    scratch.build()
    return scratch


def pages(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))


def page_url(rel: str) -> str:
    """Return the URL path an output file is served at (index.html by its folder)."""
    return rel[: -len("index.html")] if rel.endswith("index.html") else rel


def links(document) -> list[tuple[str, str, str]]:
    """Return (tag, rel, url) of every link, stylesheet and image of a parsed page."""
    found = []
    for tag, attribute in LINKING:
        for element in document.iter(tag):
            if element.get(attribute) is not None:
                found.append((tag, element.get("rel", ""), element.get(attribute)))
    return found


def ids_of(out: Path, rel: str) -> set[str]:
    document = lxml.html.fromstring((out / rel).read_bytes())
    return {element.get("id") for element in document.iter() if isinstance(element.tag, str) and element.get("id")}


def target_file(rel: str) -> str:
    return rel + "index.html" if rel == "" or rel.endswith("/") else rel


def check_tree(out: Path, base_url: str) -> list[str]:
    """Follow every link of every page inside the tree; return what is broken or not mirror-ready."""
    problems = []
    root = "http://mirror.invalid/some/prefix/"
    for rel in pages(out):
        if rel == SERVED_ANYWHERE:
            continue
        document = lxml.html.fromstring((out / rel).read_bytes())
        here = root + page_url(rel)
        for tag, rel_attr, url in links(document):
            if url.startswith(base_url):
                # A built page linked through base_url breaks on a mirror; a service such as the
                # unsubscribe endpoint lives only on the main domain and is an ordinary external link.
                built_page = (out / target_file(unquote(urlsplit(url[len(base_url):]).path))).is_file()
                if rel_attr != "canonical" and (built_page or tag != "a"):
                    problems.append(f"{rel}: <{tag}> {url} uses base_url; archive links must be relative")
                continue
            resolved = urljoin(here, url)
            if not resolved.startswith(root):
                scheme = urlsplit(resolved).scheme
                if tag != "a" or scheme not in ("https", "http", "mailto"):
                    problems.append(f"{rel}: <{tag}> {url} loads from outside the site")
                continue
            parts = urlsplit(resolved)
            target = target_file(unquote(parts.path[len(urlsplit(root).path):]))
            if not (out / target).is_file():
                problems.append(f"{rel}: <{tag}> {url} -> {target} does not exist")
            elif parts.fragment and target.endswith(".html") and unquote(parts.fragment) not in ids_of(out, target):
                problems.append(f"{rel}: <{tag}> {url} -> no #{parts.fragment} in {target}")
    return problems


def test_every_archive_page_is_valid_html5(built, sample):
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    for site in (built, sample):
        for rel in pages(site.output):
            if rel.startswith(("newsletter/", "alerts/")):
                continue  # email web copies: tested with the newsletter
            data = (site.output / rel).read_bytes()
            assert data.startswith(b"<!DOCTYPE html>"), rel
            try:
                parser.parse(data)
            except html5lib.html5parser.ParseError as error:
                pytest.fail(f"{rel}: {error}")


def test_no_internal_link_is_broken_and_all_are_relative(built, sample):
    for site in (built, sample):
        assert len(pages(site.output)) > 10
        assert check_tree(site.output, BASE) == []


def test_the_link_checker_finds_a_broken_link(built):
    page = built.output / "en/index.html"
    page.write_text(page.read_text().replace("</main>", '<a href="../en/nowhere/">x</a><a href="#missing">y</a>'
                                                       '<img src="https://tracker.example.com/p.gif" alt=""></main>'))
    problems = check_tree(built.output, BASE)
    assert any("en/nowhere/index.html does not exist" in p for p in problems)
    assert any("no #missing" in p for p in problems)
    assert any("tracker.example.com" in p and "outside the site" in p for p in problems)


def test_the_not_found_page_links_from_the_site_root(built):
    document = lxml.html.fromstring((built.output / SERVED_ANYWHERE).read_bytes())
    found = links(document)
    # No stylesheet to miss: the style is inline; the icon and the links start at the site path.
    assert found and all(tag == "a" or rel in ("icon", "alternate") for tag, rel, _ in found)
    for _, _, url in found:
        assert url.startswith("/")
        assert (built.output / target_file(url.lstrip("/"))).is_file(), url
    assert document.find(".//style") is not None
    assert document.find(".//meta[@name='robots']").get("content") == "noindex"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def mirror(built, tmp_path):
    """Serve the built tree from http://127.0.0.1:PORT/mirror/, as another host at a sub-path would."""
    served = tmp_path / "served"
    shutil.copytree(built.output, served / "mirror")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mirror/", built
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_the_archive_works_from_a_sub_path_on_another_host(mirror):
    start, built = mirror
    queue = [start + quote(page_url(rel)) for rel in pages(built.output) if rel != SERVED_ANYWHERE]
    seen: set[str] = set()
    fetched = {"text/css": 0, "image/png": 0, "application/atom+xml": 0}
    broken = []
    while queue and len(seen) < 2000:  # bounded: the scratch site has far fewer resources
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        status, kind, body = fetch(url)
        if status != 200:
            broken.append(f"{url}: HTTP {status}")
            continue
        fetched[kind] = fetched.get(kind, 0) + 1
        if kind != "text/html":
            continue
        for tag, rel_attr, link in links(lxml.html.fromstring(body)):
            absolute = urljoin(url, link).split("#")[0]
            if absolute.startswith(start):
                queue.append(absolute)
            elif rel_attr != "canonical" and not (tag == "a" and not absolute.startswith("http://127.0.0.1")):
                broken.append(f"{url}: <{tag}> {link} leaves the mirror")
    assert broken == []
    assert fetched["text/css"] == 1 and fetched["image/png"] == 1 and fetched["application/atom+xml"] > 3
    assert len(seen) > len(pages(built.output))
