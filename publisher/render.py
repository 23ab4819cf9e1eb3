"""Turn every entry file into a checked, rendered Entry: cached by content, both cores for the rest.

Parsing front matter and rendering Markdown is most of a build's cost, and it depends only on
a file's bytes, the config, publisher's own code and the library versions. So each result is
cached under a hash of exactly those (never a modification time), and whatever is not cached
is spread over a process pool. Templating and feeds stay in the main process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import pickle
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote

from publisher import images, redaction
from publisher.config import CONFIG_NAME, Config
from publisher.content import Entry, entry_files, escapes, find_collisions, parse_entry
from publisher.markup import render_markdown
from publisher.problems import EditorError, Problem
from publisher.redaction import RedactionList

log = logging.getLogger(__name__)
LIBRARIES = ("markdown", "nh3", "pyyaml", "pillow")
POOL_THRESHOLD = 64  # below this many files to render, a pool costs more than it saves
CHUNK = 16

# An entry (None if it has errors), its problems, and the local files its HTML depends on
# (image sizes), each with the digest it had when the result was made.
Result = tuple[Entry | None, list[Problem], tuple[tuple[str, bytes], ...]]


def load_rendered(config: Config, store: bool = True) -> tuple[tuple[Entry, ...], tuple[Problem, ...]]:
    """Return every entry with its HTML, oldest first, and the warnings; raise EditorError on errors.

    With `store=False` the cache is only read (`publisher check` writes nothing).
    """
    sources = read_sources(config)
    redactions = redaction.load(config)
    salt = fingerprint(config)
    keys = {rel: hashlib.blake2b(salt + rel.encode() + b"\0" + raw, digest_size=20).digest()
            for rel, raw in sources.items()}
    with RenderCache(config.path("state") / "cache" / "entries.sqlite", store) as cache:
        digests = FileDigests(config.path("content"))
        results = {rel: r for rel, r in cache.get(keys).items() if digests.unchanged(r[2])}
        missing = [(rel, sources[rel]) for rel in sources if rel not in results]
        fresh = dict(zip((rel for rel, _ in missing), process_all(missing, config, redactions)))
        cache.put({keys[rel]: result for rel, result in fresh.items()})
        cache.retain(keys.values())
    results.update(fresh)
    entries = [entry for entry, _, _ in results.values() if entry is not None]
    problems = [p for _, found, _ in results.values() for p in found] + find_collisions(entries, config)
    if any(not p.warning for p in problems):
        raise EditorError(problems)
    return tuple(sorted(entries, key=lambda e: (e.date, e.path))), tuple(problems)


def read_sources(config: Config) -> dict[str, bytes]:
    """Read every entry file once; raise EditorError naming each that cannot be read or leads outside content/."""
    sources, problems = {}, []
    for path in entry_files(config.path("content")):
        rel = path.relative_to(config.root).as_posix()
        if escapes(path, config.path("content")):
            problems.append(Problem(rel, 1, "this is a link to a file outside content/; copy the file in instead"))
            continue
        try:
            sources[rel] = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(rel, 1, f"cannot read the file: {exc.strerror}"))
    if problems:
        raise EditorError(problems)
    return sources


def process_all(files: list[tuple[str, bytes]], config: Config, redactions: RedactionList) -> list[Result]:
    """Parse, scan and render files, on every core when there are enough of them."""
    if len(files) < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        return [process_file(rel, raw, config, redactions) for rel, raw in files]
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    # forkserver, not fork: the scheduler calls this from a process that runs threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["publisher.render"])
    try:
        with ProcessPoolExecutor(os.cpu_count(), mp_context=context, initializer=_start_worker,
                                 initargs=(config, redactions)) as pool:
            return [result for chunk in pool.map(_process_chunk, chunks) for result in chunk]
    except (BrokenProcessPool, OSError) as exc:
        # No pool here (a host without /dev/shm, a main module a worker cannot import): slower, same result.
        log.warning("rendering in one process: the process pool failed (%s)", exc)
        return [process_file(rel, raw, config, redactions) for rel, raw in files]


def process_file(rel: str, raw: bytes, config: Config, redactions: RedactionList) -> Result:
    """Parse one file, look for listed names in it, and if it is sound render its body."""
    entry, problems = parse_entry(rel, raw, config)
    name = Path(rel).relative_to(config.content_dir).as_posix()
    problems = problems + redaction.scan_entry(rel, name, raw.decode("utf-8", errors="replace"), redactions)
    if entry is None or entry.retracted:
        return entry, problems, ()  # a retraction's notice is rendered from a template later
    try:
        rendered = render_markdown(entry.body, source_folder(entry, config))
    except (RecursionError, ValueError, IndexError, KeyError, AttributeError) as exc:
        # Python-Markdown has no error of its own; whatever it raises is about this text.
        problem = Problem(rel, entry.body_line, f"this text cannot be rendered ({type(exc).__name__}); simplify its markup")
        return None, [*problems, problem], ()
    body = images.add_sizes(rendered.html, config)
    digests = FileDigests(config.path("content"))
    depends = tuple((src, digests.of(src)) for src in sorted(set(images.local_sources(body))))
    entry = dataclasses.replace(entry, html=body, summary=entry.summary or rendered.first_paragraph)
    return entry, problems, depends


def source_folder(entry: Entry, config: Config) -> str:
    """Return the entry's folder as seen from the content root, e.g. /2017/, for relative links."""
    folder = Path(entry.path).relative_to(config.content_dir).parent.as_posix()
    return "/" if folder == "." else f"/{folder}/"


_worker: tuple[Config, RedactionList] | None = None


def _start_worker(config: Config, redactions: RedactionList) -> None:
    global _worker
    _worker = (config, redactions)


def _process_chunk(files: list[tuple[str, bytes]]) -> list[Result]:
    return [process_file(rel, raw, *_worker) for rel, raw in files]


def fingerprint(config: Config) -> bytes:
    """Hash what every entry's result depends on besides its own bytes: config, redaction list, code."""
    config_bytes = (config.root / CONFIG_NAME).read_bytes()
    listed = redaction.list_path(config)
    list_bytes = listed.read_bytes() if listed.is_file() else b""
    return hashlib.blake2b(config_bytes + b"\0" + list_bytes + b"\0" + code_version(), digest_size=20).digest()


@lru_cache(maxsize=1)
def code_version() -> bytes:
    """Hash publisher's own source and the versions of the libraries that shape a result."""
    digest = hashlib.blake2b(digest_size=20)
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in LIBRARIES:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=none".encode())
    return digest.digest()


class FileDigests:
    """Digests of files under content/, each read once per build."""

    def __init__(self, content: Path):
        self.content = content
        self.known: dict[str, bytes] = {}

    def of(self, src: str) -> bytes:
        if src not in self.known:
            path = self.content / unquote(src).lstrip("/")
            try:
                self.known[src] = hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
            except OSError:
                self.known[src] = b"missing"
        return self.known[src]

    def unchanged(self, depends: tuple[tuple[str, bytes], ...]) -> bool:
        return all(self.of(src) == digest for src, digest in depends)


class RenderCache:
    """A table of hash -> pickled result in SQLite, in the state folder (never in output/).

    Pickle is safe here only because the state folder is as trusted as the code itself.
    """

    def __init__(self, path: Path, store: bool = True):
        self.path = path
        self.store = store
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> "RenderCache":
        if self.store:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.db = self._open()
            except sqlite3.DatabaseError:  # damaged (a full disk, say): a cache is never worth a failed build
                self.path.unlink(missing_ok=True)
                self.db = self._open()
        elif self.path.is_file():
            self.db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        if self.db is not None:
            self.db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, value BLOB NOT NULL)")
        return db

    def get(self, keys: dict[str, bytes]) -> dict[str, Result]:
        if self.db is None:
            return {}
        try:
            return self._get(keys)
        except sqlite3.DatabaseError:  # a damaged or foreign file: render afresh (and, when storing, replace it)
            return {}

    def _get(self, keys: dict[str, bytes]) -> dict[str, Result]:
        wanted = {key: rel for rel, key in keys.items()}
        found: dict[str, Result] = {}
        batch = list(wanted)
        for start in range(0, len(batch), 500):
            part = batch[start:start + 500]
            rows = self.db.execute(f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(part))})", part)
            for key, value in rows:
                found[wanted[key]] = pickle.loads(value)
        return found

    def put(self, results: dict[bytes, Result]) -> None:
        if not results or not self.store:
            return
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)",
                                ((key, pickle.dumps(result, protocol=5)) for key, result in results.items()))

    def retain(self, keys: Iterable[bytes]) -> None:
        """Drop results no current file uses, once they outnumber the live ones."""
        if not self.store:
            return
        keys = list(keys)
        count = self.db.execute("SELECT count(*) FROM results").fetchone()[0]
        if count <= 2 * len(keys) + 100:
            return
        with self.db:
            self.db.execute("CREATE TEMP TABLE live (key BLOB PRIMARY KEY)")
            self.db.executemany("INSERT OR IGNORE INTO live VALUES (?)", ((k,) for k in keys))
            self.db.execute("DELETE FROM results WHERE key NOT IN (SELECT key FROM live)")
            self.db.execute("DROP TABLE live")
