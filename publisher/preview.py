"""`publisher preview`: the whole site, drafts included, served from memory and rebuilt on save.

Nothing is written: the tree lives in this process only, so a draft or an embargoed alert
seen here can never reach output/. Preview pages get a banner and a small reload script;
that script exists only here, never in a built file.
"""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import mimetypes
import re
import sys
import threading
from datetime import datetime
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import parse_qs, quote, unquote, urlsplit

import watchfiles

from publisher import redaction
from publisher.build import load_site, site_files, template_problems
from publisher.check import check
from publisher.config import CONFIG_NAME, load_config
from publisher.content import Entry
from publisher.problems import EditorError, Problem
from publisher.templates import Templates
from publisher.urls import entry_page

PREFIX = "/_preview/"
# Short debounce so the page follows a save quickly; an empty yield every half second tells us the watcher runs.
WATCH_OPTIONS = dict(debounce=200, step=50, rust_timeout=500, yield_on_timeout=True, raise_interrupt=False)
POLL_SECONDS = 25
WIDTHS = ("600", "375")
SCHEMES = ("light", "dark")
_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)")
_CID = re.compile(r"""(["'(])cid:([^"')\s]+)""")


@dataclasses.dataclass(frozen=True)
class Hidden:
    """An entry readers cannot see yet, and why."""

    entry: Entry
    page: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One rebuild: the files, the hidden entries shown among them, and the problems."""

    version: int
    files: dict[str, bytes]
    hidden: tuple[Hidden, ...]
    problems: tuple[Problem, ...]
    built: datetime | None


def preview_tree(root: Path, now: datetime) -> tuple[dict[str, bytes], tuple[Hidden, ...]]:
    """Build every file in memory as if drafts and embargoed entries were published."""
    config = load_config(root)
    templates = Templates(config)
    with template_problems(config):
        site = load_site(config, templates, now)
        hidden = tuple(Hidden(e, entry_page(e, config), _reason(e)) for e in site.hidden)
        entries = sorted(site.entries + site.hidden, key=lambda e: (-e.date.timestamp(), e.path))
        everything = dataclasses.replace(site, entries=tuple(entries), hidden=())
        return dict(site_files(everything, templates)), hidden


def _reason(entry: Entry) -> str:
    if entry.draft:
        return "draft: never published while 'draft: true'"
    return f"embargoed: published at {entry.date.isoformat()}"


class Preview:
    """The current snapshot, rebuilt on demand, with waiters told of each new version."""

    def __init__(self, root: Path, clock: Callable[[], datetime], log: TextIO = sys.stderr):
        self.root = root
        self.clock = clock
        self.log = log
        self.changed = threading.Condition()
        self.building = threading.Lock()  # two watchers may fire at once; builds must not overtake each other
        self.watching = threading.Event()
        self.snapshot = Snapshot(0, {}, (), (), None)

    def rebuild(self) -> Snapshot:
        """Rebuild from disk; on errors keep the last good files and show the problems."""
        with self.building:
            return self._rebuild()

    def _rebuild(self) -> Snapshot:
        now = self.clock()
        problems = tuple(check(self.root, now))
        try:
            files, hidden = preview_tree(self.root, now)
            built = now
        except EditorError as error:
            files, hidden, built = self.snapshot.files, self.snapshot.hidden, self.snapshot.built
            problems = tuple(sorted(set(problems) | set(error.problems)))
        with self.changed:
            self.snapshot = Snapshot(self.snapshot.version + 1, files, hidden, problems, built)
            self.changed.notify_all()
        self.report(self.snapshot)
        return self.snapshot

    def report(self, snapshot: Snapshot) -> None:
        for problem in snapshot.problems:
            print(problem, file=self.log)
        errors = sum(not p.warning for p in snapshot.problems)
        state = "rebuilt" if snapshot.built and not errors else "not rebuilt (showing the last good build)"
        print(f"preview {state}: {len(snapshot.files)} files, {_count(snapshot.problems)}", file=self.log, flush=True)

    def wait(self, version: int, timeout: float) -> int:
        """Return the current version once it differs from `version`, or after `timeout` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.snapshot.version != version, timeout)
            return self.snapshot.version

    def watch(self, stop: threading.Event) -> None:
        """Rebuild whenever content, templates, the config or the redaction list change."""
        config = load_config(self.root)  # serve() has read it once already; its folders are watched from now on
        folders = [str(p) for p in [config.path("content"), *Templates(config).folders] if p.is_dir()]
        watched = {(self.root / CONFIG_NAME).resolve(), redaction.list_path(config).resolve()}
        parents = sorted({str(p.parent) for p in watched if p.parent.is_dir()})
        files = watchfiles.watch(*parents, watch_filter=lambda _, path: Path(path).resolve() in watched,
                                 recursive=False, **WATCH_OPTIONS, stop_event=stop)
        threads = [threading.Thread(target=self._follow, args=(files,), daemon=True)]
        if folders:
            trees = watchfiles.watch(*folders, **WATCH_OPTIONS, stop_event=stop)
            threads.append(threading.Thread(target=self._follow, args=(trees,), daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _follow(self, changes) -> None:
        for changed in changes:
            self.watching.set()  # the first (empty) yield shows the watcher is in place
            if not changed:
                continue
            try:
                self.rebuild()
            except Exception as exc:  # a bug must not stop the preview; show it and keep watching
                print(f"preview: rebuild failed: {exc!r}", file=self.log, flush=True)


def _count(problems: tuple[Problem, ...]) -> str:
    errors = sum(not p.warning for p in problems)
    warnings = len(problems) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


def serve(root: Path, host: str, port: int, clock: Callable[[], datetime], log: TextIO = sys.stderr) -> None:
    """Serve the preview until interrupted; a config that cannot be read stops it before it starts."""
    load_config(root)
    preview = Preview(root, clock, log)
    preview.rebuild()
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.preview = preview  # type: ignore[attr-defined]
    stop = threading.Event()
    threading.Thread(target=preview.watch, args=(stop,), daemon=True).start()
    preview.watching.wait(timeout=10)  # say we are ready only once a save will be seen
    shown = f"[{host}]" if ":" in host else host
    print(f"preview at http://{shown}:{server.server_address[1]}{PREFIX} — nothing is written to output/; "
          f"Ctrl-C stops it", file=log, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()


class Handler(BaseHTTPRequestHandler):
    """Answer GET requests from the snapshot in memory."""

    server_version = "publisher-preview"

    @property
    def preview(self) -> Preview:
        return self.server.preview  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # the terminal is for problems, not requests
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_allowed():
            return self.send(HTTPStatus.FORBIDDEN, b"unknown Host header", "text/plain; charset=utf-8")
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = {
            PREFIX: self.index, PREFIX + "wait": self.wait, PREFIX + "email": self.email_viewer,
            PREFIX + "email.html": self.email_html, PREFIX + "email.txt": self.email_text,
            PREFIX + "email-part": self.email_part,
        }.get(url.path)
        snapshot = self.preview.snapshot
        if route:
            return route(snapshot, query)
        return self.site_file(snapshot, unquote(url.path), "raw" in query)

    def _host_allowed(self) -> bool:
        """Refuse Host names other than localhost and IP addresses, so no web page reaches us by DNS rebinding."""
        host = (self.headers.get("Host") or "").strip().lower()
        host = host[1:host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return host == "localhost"

    def send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def site_file(self, snapshot: Snapshot, path: str, raw: bool) -> None:
        rel = path.lstrip("/")
        rel = rel + "index.html" if rel == "" or rel.endswith("/") else rel
        data = snapshot.files.get(rel)
        if data is None and f"{rel}/index.html" in snapshot.files:
            return self.send(HTTPStatus.MOVED_PERMANENTLY, b"", "text/plain", {"Location": quote(path + "/")})
        if data is None:
            return self.send(HTTPStatus.NOT_FOUND, page(snapshot, "Not found", f"<p>Nothing at <code>{html.escape(path)}"
                                                        f"</code> in this build.</p>"), "text/html; charset=utf-8")
        kind = _content_type(rel)
        if kind.startswith("text/html") and not raw:
            data = decorate(data, snapshot, rel)
        self.send(HTTPStatus.OK, data, kind)

    def index(self, snapshot: Snapshot, query: dict) -> None:
        self.send(HTTPStatus.OK, index_page(snapshot), "text/html; charset=utf-8")

    def wait(self, snapshot: Snapshot, query: dict) -> None:
        version = int(query.get("v", "0")) if query.get("v", "0").isdigit() else 0
        current = self.preview.wait(version, POLL_SECONDS)
        self.send(HTTPStatus.OK, str(current).encode(), "text/plain; charset=utf-8")

    def email_viewer(self, snapshot: Snapshot, query: dict) -> None:
        path = query.get("path", "")
        if path not in snapshot.files or not path.endswith(".eml"):
            return self.send(HTTPStatus.NOT_FOUND, page(snapshot, "No such email", "<p>That email is not in this "
                                                        "build.</p>"), "text/html; charset=utf-8")
        scheme = query.get("scheme") if query.get("scheme") in SCHEMES else "light"
        width = query.get("width") if query.get("width") in WIDTHS else "600"
        self.send(HTTPStatus.OK, viewer_page(snapshot, path, scheme, width), "text/html; charset=utf-8")

    def email_html(self, snapshot: Snapshot, query: dict) -> None:
        message = _message(snapshot, query.get("path", ""))
        part = message.get_body(("html",)) if message else None
        if part is None:
            return self.send(HTTPStatus.NOT_FOUND, b"no HTML part", "text/plain; charset=utf-8")
        body = force_scheme(part.get_content(), query.get("scheme", "light"))
        path = quote(query["path"], safe="")
        body = _CID.sub(lambda m: f"{m.group(1)}{PREFIX}email-part?path={path}&amp;cid={quote(m.group(2), safe='')}",
                        body)
        self.send(HTTPStatus.OK, body.encode("utf-8"), "text/html; charset=utf-8")

    def email_text(self, snapshot: Snapshot, query: dict) -> None:
        message = _message(snapshot, query.get("path", ""))
        part = message.get_body(("plain",)) if message else None
        if part is None:
            return self.send(HTTPStatus.NOT_FOUND, b"no plain-text part", "text/plain; charset=utf-8")
        self.send(HTTPStatus.OK, part.get_content().encode("utf-8"), "text/plain; charset=utf-8")

    def email_part(self, snapshot: Snapshot, query: dict) -> None:
        message = _message(snapshot, query.get("path", ""))
        wanted = f"<{query.get('cid', '')}>"
        for part in message.walk() if message else ():
            if part.get("Content-ID", "").strip() == wanted and not part.is_multipart():
                return self.send(HTTPStatus.OK, part.get_payload(decode=True) or b"", part.get_content_type())
        self.send(HTTPStatus.NOT_FOUND, b"no such part", "text/plain; charset=utf-8")


def _message(snapshot: Snapshot, path: str):
    data = snapshot.files.get(path) if path.endswith(".eml") else None
    return BytesParser(policy=policy.default).parsebytes(data) if data else None


def _content_type(rel: str) -> str:
    kind = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    if rel.endswith(".eml"):
        kind = "text/plain"  # show the raw message rather than hand it to a mail program
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith(("xml", "json")) else kind


def force_scheme(document: str, scheme: str) -> str:
    """Make the email's light or dark rules apply whatever the viewer's system setting is."""
    def forced(match: re.Match) -> str:
        # Features that are always true or always false keep compound queries ("… and (max-width: 600px)") valid.
        return "(min-width: 0px)" if match.group(1) == scheme else "(max-width: 0px)"
    return _DARK_QUERY.sub(forced, document)


# Pages -----------------------------------------------------------------------

STYLE = """
.pv-bar{font:14px/1.4 system-ui,sans-serif;background:#4a1d6a;color:#fff;padding:8px 12px;border-bottom:3px solid #f5b700}
.pv-bar a{color:#fff}.pv-bar strong{background:#f5b700;color:#000;padding:1px 6px;border-radius:3px}
.pv-bar details{margin-top:4px}.pv-bar li{white-space:pre-wrap}.pv-error{color:#ffb4b4}
"""
PAGE_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
main{padding:12px 20px;max-width:1100px}h1{font-size:22px}h2{font-size:18px;margin-top:28px}
code{font-size:13px}ul{padding-left:20px}.pv-hidden{background:#fff3c4;padding:0 4px}
.pv-controls a{margin-right:10px}.pv-controls a[aria-current]{font-weight:bold;text-decoration:none}
.pv-frame{border:1px solid #999;display:block;margin:12px 0;height:70vh;background:#fff}
pre{white-space:pre-wrap;border:1px solid #ccc;padding:12px;max-width:70ch;background:#fafafa}
"""


def reload_script(version: int) -> str:
    """Return the long-poll that reloads the page after the next rebuild (preview only)."""
    return ("<script>(function(){var v=%d;function poll(){fetch('%swait?v='+v,{cache:'no-store'})"
            ".then(function(r){return r.text()}).then(function(t){if(t!==String(v)){location.reload()}else{poll()}},"
            "function(){setTimeout(poll,1000)})}poll()})();</script>" % (version, PREFIX))


def banner(snapshot: Snapshot, rel: str = "", shown: str = "") -> str:
    """Return the preview bar: what this page is, what on it is unpublished, and the last problems."""
    notes = [f"<strong>PREVIEW</strong> not published; drafts and embargoed entries are shown. "
             f"<a href=\"{PREFIX}\">All pages and emails</a>"]
    for item in snapshot.hidden:
        if item.page == rel:
            notes.append(f"<strong>{html.escape(item.reason.split(':')[0].upper())}</strong> "
                         f"{html.escape(item.reason)}")
        elif shown and html.escape(item.entry.title, quote=False) in shown:
            notes.append(f"<strong>{html.escape(item.reason.split(':')[0].upper())}</strong> shown here: "
                         f"“{html.escape(item.entry.title)}” ({html.escape(item.reason)})")
    errors = [p for p in snapshot.problems if not p.warning]
    if snapshot.problems:
        items = "".join(f"<li{' class=pv-error' if not p.warning else ''}>{html.escape(str(p))}</li>"
                        for p in snapshot.problems)
        notes.append(f"<details{' open' if errors else ''}><summary>{_count(snapshot.problems)}</summary>"
                     f"<ul>{items}</ul></details>")
    return f'<div class="pv-bar" id="pv-bar" role="status"><style>{STYLE}</style>{"<br>".join(notes)}</div>'


def decorate(data: bytes, snapshot: Snapshot, rel: str) -> bytes:
    """Add the preview bar after <body> and the reload script before </body>."""
    text = data.decode("utf-8", errors="replace")
    bar, script = banner(snapshot, rel, text), reload_script(snapshot.version)
    opened = re.search(r"<body\b[^>]*>", text, re.I)
    text = text[: opened.end()] + bar + text[opened.end():] if opened else bar + text
    closing = text.lower().rfind("</body>")
    text = text[:closing] + script + text[closing:] if closing >= 0 else text + script
    return text.encode("utf-8")


def page(snapshot: Snapshot, title: str, body: str, shown: str = "") -> bytes:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)} · preview</title>"
            f"<style>{PAGE_STYLE}</style></head><body>{banner(snapshot, shown=shown)}<main><h1>{html.escape(title)}</h1>"
            f"{body}</main>{reload_script(snapshot.version)}</body></html>").encode("utf-8")


def index_page(snapshot: Snapshot) -> bytes:
    """List every email and every archive page of the preview, drafts marked."""
    files = snapshot.files
    marks = {h.page: h.reason for h in snapshot.hidden}
    sections = []
    for title, folder, suffix in (("Weekly issues", "newsletter/", "issue"), ("Alert emails", "alerts/", "alert")):
        emails = sorted((p for p in files if p.startswith(folder) and p.endswith(f"/{suffix}.eml")), reverse=True)
        items = "".join(_email_item(p, suffix, files) for p in emails) or "<li>none in this build</li>"
        sections.append(f"<h2>{title}</h2><ul>{items}</ul>")
    if snapshot.hidden:
        items = "".join(f'<li><a href="/{quote(h.page[:-len("index.html")])}">{html.escape(h.entry.title)}</a> '
                        f'<span class="pv-hidden">{html.escape(h.reason)}</span> <code>{html.escape(h.entry.path)}'
                        f"</code></li>" for h in snapshot.hidden)
        sections.insert(0, f"<h2>Drafts and embargoed entries</h2><ul>{items}</ul>")
    pages = sorted(p for p in files if p.endswith(".html"))
    items = "".join(f'<li><a href="/{quote(p[:-len("index.html")] if p.endswith("index.html") else p)}">'
                    f"{html.escape(p)}</a>{_mark(marks.get(p))}</li>" for p in pages)
    sections.append(f"<h2>Archive pages ({len(pages)})</h2><ul>{items}</ul>")
    built = snapshot.built.isoformat() if snapshot.built else "never (fix the errors above)"
    return page(snapshot, "Preview", f"<p>Built as of {html.escape(built)}; rebuilt when you save.</p>"
                + "".join(sections))


def _email_item(path: str, suffix: str, files: dict[str, bytes]) -> str:
    folder = path[: -len(f"{suffix}.eml")]
    web = f' · <a href="/{quote(folder)}">web copy</a>' if folder + "index.html" in files else ""
    text = f' · <a href="/{quote(folder + suffix)}.txt">plain text</a>' if f"{folder}{suffix}.txt" in files else ""
    return (f'<li><a href="{PREFIX}email?path={quote(path, safe="")}">{html.escape(folder.rstrip("/"))}</a>'
            f"{text}{web}</li>")


def _mark(reason: str | None) -> str:
    return f' <span class="pv-hidden">{html.escape(reason)}</span>' if reason else ""


def viewer_page(snapshot: Snapshot, path: str, scheme: str, width: str) -> bytes:
    """Show one email's HTML in a frame of the chosen width and colour scheme, and its plain text."""
    def link(label: str, new_scheme: str, new_width: str) -> str:
        current = ' aria-current="true"' if (new_scheme, new_width) == (scheme, width) else ""
        target = f"{PREFIX}email?path={quote(path, safe='')}&amp;scheme={new_scheme}&amp;width={new_width}"
        return f'<a href="{target}"{current} id="pv-{new_scheme}-{new_width}">{label}</a>'
    message = _message(snapshot, path)
    subject = str(message.get("Subject", "")) if message else ""
    controls = " ".join(link(f"{s} · {w} px", s, w) for s in SCHEMES for w in WIDTHS)
    source = f"{PREFIX}email.html?path={quote(path, safe='')}&amp;scheme={scheme}"
    text_part = message.get_body(("plain",)) if message else None
    text = html.escape(text_part.get_content()) if text_part else "(no plain-text part)"
    body = (f"<p>Subject: <strong>{html.escape(subject)}</strong> · <code>{html.escape(path)}</code></p>"
            f'<p class="pv-controls">{controls}</p>'
            f'<iframe class="pv-frame" id="pv-email" title="the email" src="{source}" width="{width}" '
            f'style="color-scheme:{scheme};width:{width}px" sandbox="allow-same-origin"></iframe>'
            f"<h2>Plain text</h2><pre id=\"pv-text\">{text}</pre>")
    html_part = message.get_body(("html",)) if message else None
    return page(snapshot, "Email preview", body, html_part.get_content() if html_part else "")
