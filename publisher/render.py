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
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote

from publisher import collector, images, parallel, records, redaction
from publisher.config import CONFIG_NAME, Config
from publisher.content import Entry, SourceFile, Stored, entry_files, find_collisions, parse_entry
from publisher.markup import render_markdown
from publisher.problems import EditorError, Problem
from publisher.stamp import stat_signature
from publisher.redaction import RedactionList

log = logging.getLogger(__name__)
LIBRARIES = ("markdown", "nh3", "pyyaml", "pillow")
POOL_THRESHOLD = 64  # below this many files to render, a pool costs more than it saves
CHUNK = 16
CACHE_FORMAT = 3  # entries.sqlite's layout (PRAGMA user_version); a cache in another is started again

# An entry (None if it has errors), its problems, and the local files its HTML depends on
# (image sizes), each with the digest it had when the result was made.
Result = tuple[Entry | None, list[Problem], tuple[tuple[str, bytes], ...]]


def load_rendered(config: Config, store: bool = True, found: list[SourceFile] | None = None,
                  digests: "FileDigests | None" = None) -> tuple[tuple[Entry, ...], tuple[Problem, ...]]:
    """Return every entry, oldest first, and the warnings; raise EditorError on errors.

    Entries come back without their Markdown and HTML in memory: those are read from the
    cache when asked for (Entry.body, Entry.html). With `store=False` the cache is only read
    (`publisher check` writes nothing), and what it lacks is held in memory instead.
    `found` is content.source_files' list, and `digests` a FileDigests, if the caller has them.
    """
    paths = source_paths(config, found)
    redactions = redaction.load(config)
    salt = fingerprint(config)
    cache_path = cache_file(config)
    with RenderCache(cache_path, store) as cache:
        digests = digests or FileDigests(config.path("content"), cache)
        with collector.loading():
            keys = {rel: hashlib.blake2b(salt + rel.encode() + b"\0" + digests.of_path(path), digest_size=20).digest()
                    for rel, path in paths.items()}
        with _render_aside(paths, digests, config, redactions) as early:
            with collector.loading():
                results = {rel: r for rel, r in cache.get(keys, salt).items() if not r[2] or digests.unchanged(r[2])}
            done = early.results()
        missing = [rel for rel in paths if rel not in results]
        rest = process_all(read_sources({rel: paths[rel] for rel in missing if rel not in done}), config, redactions)
        for rel in missing:
            results[rel] = cache.put(keys[rel], done[rel] if rel in done else next(rest), salt)
        cache.commit()
        cache.retain(keys.values())
        digests.save()
    texts = TextStore(cache_path) if store else cache.reader()
    with collector.loading():
        entries = [_stored(result, keys[rel], texts) for rel, result in results.items() if result[0] is not None]
        problems = [p for _, found, _ in results.values() for p in found] + find_collisions(entries, config)
        if any(not p.warning for p in problems):
            raise EditorError(problems)
        return tuple(sorted(entries, key=_oldest_first)), tuple(problems)


def _oldest_first(entry: Entry) -> tuple[datetime, str]:
    # The date in UTC without its zone: the same order, but each comparison need not ask two
    # zones for their offsets (10,000 entries in a dozen zone objects took 0.07 s to sort).
    return entry.date.astimezone(timezone.utc).replace(tzinfo=None), entry.path


def cache_file(config: Config) -> Path:
    return config.path("state") / "cache" / "entries.sqlite"


def source_paths(config: Config, found: list[SourceFile] | None = None) -> dict[str, str]:
    """Find every entry file (name relative to the site root -> path); raise EditorError naming each that leads outside content/."""
    content = config.path("content")
    prefix = content.relative_to(config.root).as_posix()
    paths, problems = {}, []
    for file in entry_files(content, found):
        rel = file.name if prefix == "." else f"{prefix}/{file.name}"
        if file.leads_out(content):
            problems.append(Problem(rel, 1, "this is a link to a file outside content/; copy the file in instead"))
        else:
            paths[rel] = file.path
    if problems:
        raise EditorError(problems)
    return paths


def read_sources(paths: dict[str, str]) -> list[tuple[str, bytes]]:
    """Read entry files; raise EditorError naming each that cannot be read."""
    sources, problems = [], []
    for rel, path in paths.items():
        try:
            with open(path, "rb") as handle:
                sources.append((rel, handle.read()))
        except OSError as exc:
            problems.append(Problem(rel, 1, f"cannot read the file: {exc.strerror}"))
    if problems:
        raise EditorError(problems)
    return sources


def _stored(result: Result, key: bytes, texts: "TextStore | None") -> Entry:
    """Point a result's entry at where its texts are kept, and give it its fingerprint.

    The entry was made by this load (unpickled or rendered) and nothing else holds it yet, so
    it is completed in place: dataclasses.replace would copy 10,000 entries for two fields.
    """
    entry, _, depends = result
    fields = entry.__dict__  # written directly, as object.__setattr__ would, at a third of its cost
    fields["fingerprint"] = hashlib.blake2b(key + b"".join([digest for _, digest in depends]), digest_size=20).digest()
    if texts is not None and not (entry.markdown or entry.rendered):  # else held in memory (a check cannot store)
        fields["stored"] = Stored(texts, key)
    return entry


class _Early:
    """Changed files being rendered in a forked child (if any) while this process reads the cache."""

    def __init__(self, names: list[str] | None = None, child: parallel.Aside | None = None):
        self.names, self.child = names or [], child

    def results(self) -> dict[str, Result]:
        """Return each file's result by name; none if the child failed (the caller renders them itself)."""
        got = self.child.result() if self.child else None
        return dict(zip(self.names, got)) if got is not None else {}

    def __enter__(self) -> "_Early":
        return self

    def __exit__(self, *exc) -> None:
        if self.child:
            self.child.stop()  # a no-op once collected; else ends a child whose results are no longer wanted


def _render_aside(paths: dict[str, str], digests: "FileDigests", config: Config,
                  redactions: RedactionList) -> _Early:
    """Start rendering, in a forked child where one may be forked, the few entry files hashed afresh this build.

    Reading 10,000 results from the cache takes a one-edit build a tenth of a second, and the
    edited entry's rendering a third of that (Pillow and Python-Markdown set themselves up on
    first use): side by side, both are done in the time of the first. Hashed afresh is only a
    hint that a file changed: a file the cache holds a result for keeps that result, and one
    the hint missed is rendered afterwards, here, as before. Many changed files go to the pool.
    """
    changed = [rel for rel, path in paths.items() if path in digests.fresh]
    if not changed or len(changed) >= POOL_THRESHOLD:
        return _Early()
    sources = read_sources({rel: paths[rel] for rel in changed})
    return _Early(changed, parallel.aside(lambda: list(process_all(sources, config, redactions))))


def process_all(files: list[tuple[str, bytes]], config: Config, redactions: RedactionList) -> Iterator[Result]:
    """Parse, scan and render files, in order, on every core when there are enough of them.

    Results are yielded as they come, so the caller can store each and let its texts go.
    """
    if len(files) < POOL_THRESHOLD or (os.cpu_count() or 1) < 2:
        return (process_file(rel, raw, config, redactions) for rel, raw in files)
    return _pooled(files, config, redactions)


def _pooled(files: list[tuple[str, bytes]], config: Config, redactions: RedactionList) -> Iterator[Result]:
    # Imported here: a warm build renders its few changed entries in this process, and loading
    # the pool's modules would cost it 5 ms.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    # forkserver, not fork: the scheduler calls this from a process that runs threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["publisher.render"])
    done = 0
    try:
        with ProcessPoolExecutor(os.cpu_count(), mp_context=context, initializer=_start_worker,
                                 initargs=(config, redactions)) as pool:
            for chunk in pool.map(_process_chunk, chunks):
                yield from chunk
                done += len(chunk)
    except (BrokenProcessPool, OSError) as exc:
        # No pool here (a host without /dev/shm, a main module a worker cannot import): slower, same result.
        log.warning("rendering in one process: the process pool failed (%s)", exc)
        yield from (process_file(rel, raw, config, redactions) for rel, raw in files[done:])


def process_file(rel: str, raw: bytes, config: Config, redactions: RedactionList) -> Result:
    """Parse one file, look for listed names in it, and if it is sound render its body."""
    entry, problems = parse_entry(rel, raw, config)
    name = Path(rel).relative_to(config.content_dir).as_posix()
    problems = problems + redaction.scan_entry(rel, name, raw.decode("utf-8", errors="replace"), redactions)
    if entry is None or entry.retracted:
        return entry, problems, ()  # a retraction's notice is rendered from a template later
    try:
        rendered = render_markdown(entry.body, source_folder(entry, config))
    except (RecursionError, RuntimeError, ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        # Python-Markdown has no error of its own; whatever it raises is about this text.
        problem = Problem(rel, entry.body_line, f"this text cannot be rendered ({type(exc).__name__}); simplify its markup")
        return None, [*problems, problem], ()
    body = images.add_sizes(rendered.html, config)
    digests = FileDigests(config.path("content"))
    # Every local file its outputs show: the body's images and the front matter's (templates size it).
    shown = set(images.local_sources(body)) | ({entry.image} if entry.image else set())
    depends = tuple((src, digests.of(src)) for src in sorted(shown))
    entry = dataclasses.replace(entry, rendered=body, summary=entry.summary or rendered.first_paragraph)
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
    """Digests of files under content/, each found once per build.

    A file whose size, modification and change times and inode are as they were when it was
    last hashed keeps its digest, the way git's index does, so an unchanged tree is not read
    again; the digest, never the times, is what every cache key is made of. A file changed
    within the last two seconds is hashed again next time (a second change in the same clock
    tick would leave the times as they were).
    """

    def __init__(self, content: Path, cache: "RenderCache | None" = None, signatures: dict[str, bytes] | None = None):
        self.content = os.fspath(content)
        self.cache = cache
        self.signatures = signatures or {}  # stamp.survey's stat_signature of each file, by path: not stat'ed again
        self.known: dict[str, bytes] = {}  # by name as linked
        self.found: dict[str, bytes] = {}  # by path
        self.memo = cache.signatures() if cache else {}
        self.seen: dict[str, tuple[bytes, bytes]] = {}
        self.dirty = False
        self.fresh: set[str] = set()

    def of(self, src: str) -> bytes:
        """Return the digest of a file named as an entry links it (/images/a.png), or b"missing"."""
        if src not in self.known:
            self.known[src] = self.of_path(os.path.join(self.content, unquote(src).lstrip("/")))
        return self.known[src]

    def of_path(self, path: str | Path) -> bytes:
        """Return the digest of a file, or b"missing"; a file asked for twice in a build is looked at once."""
        name = path if type(path) is str else os.fsdecode(path)  # a str (10,000 a build) needs no decoding
        if name not in self.found:
            self.found[name] = self._digest(name)
        return self.found[name]

    def _digest(self, name: str) -> bytes:
        memo = self.memo.get(name)
        seen = self.signatures.pop(name, None)  # as stamp.survey's walk saw it, if it did
        if memo and memo[0] == seen:
            self.seen[name] = memo
            return memo[1]
        try:
            info = os.stat(name)
        except OSError:
            return b"missing"
        signature = stat_signature(info)
        if memo and memo[0] == signature:
            self.seen[name] = memo
            return memo[1]
        try:
            with open(name, "rb") as handle:
                digest = hashlib.blake2b(handle.read(), digest_size=16).digest()
        except OSError:
            return b"missing"
        self.dirty = True
        self.fresh.add(name)
        if time.time() - max(info.st_mtime, info.st_ctime) > 2:  # the clock decides whether to trust times, never an output
            self.seen[name] = (signature, digest)
        return digest

    def unchanged(self, depends: tuple[tuple[str, bytes], ...]) -> bool:
        known = self.known  # looked up here first: this runs for each of 10,000 cached entries
        for src, digest in depends:
            if (known[src] if src in known else self.of(src)) != digest:
                return False
        return True

    def save(self) -> None:
        """Remember the digests found this build, if any was new."""
        if self.cache is not None and self.dirty:
            self.cache.keep_signatures({name: self.seen[name] for name in self.fresh if name in self.seen})
            self.dirty, self.fresh = False, set()


class RenderCache:
    """Results by hash in SQLite, in the state folder (never in output/).

    Each row holds an entry's metadata (see records.py) and, apart, its Markdown and HTML, which
    are read only when an output needs them. Pickle and marshal are safe here only because the state
    folder is as trusted as the code itself.
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
            try:
                self.db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30)
                self.db.execute("SELECT 1 FROM metadata LIMIT 1")
                if self.db.execute("PRAGMA user_version").fetchone()[0] != CACHE_FORMAT:
                    self.db.close()  # another layout: read as no cache (a check writes nothing)
                    self.db = None
            except sqlite3.DatabaseError:
                self.db = None
        return self

    def __exit__(self, *exc) -> None:
        if self.db is not None:
            self.db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        if db.execute("PRAGMA user_version").fetchone()[0] != CACHE_FORMAT:
            # Another layout (or a new file): a cache, so start it again, in a new file that
            # does not keep the old one's hundreds of MB as free pages.
            db.close()
            self.path.unlink(missing_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute(f"PRAGMA user_version = {CACHE_FORMAT}")
        # Metadata apart from the texts: a build reads all of it, and 10,000 rows of it are a few
        # MB read in one pass, where rows beside their texts were scattered over hundreds of MB
        # (0.9 s to read from disk at 10,000 entries, not 0.05 s). Rows are filed under the salt
        # their keys were made with (config and code, see fingerprint): only those can match a
        # build's keys, so after a change of either the rows retain() still keeps are not read.
        db.execute("CREATE TABLE IF NOT EXISTS metadata (salt BLOB NOT NULL, key BLOB NOT NULL, meta BLOB NOT NULL, "
                   "PRIMARY KEY (salt, key)) WITHOUT ROWID")
        # The texts, 15 KB a row, in an ordinary (rowid) table: SQLite keeps at most about 1 KB of
        # a WITHOUT ROWID row in its leaf and chains the rest through overflow pages, and reading
        # one html took 90-140 us instead of 30. The HTML comes first: outputs read it, seldom the Markdown.
        db.execute("CREATE TABLE IF NOT EXISTS texts (key BLOB PRIMARY KEY, html TEXT NOT NULL, markdown TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, signature BLOB NOT NULL, "
                   "digest BLOB NOT NULL)")
        return db

    def get(self, keys: dict[str, bytes], salt: bytes) -> dict[str, Result]:
        """Return the stored result of each name whose key (made with `salt`) the cache holds."""
        if self.db is None:
            return {}
        try:
            return self._get(keys, salt)
        except sqlite3.DatabaseError:  # a damaged or foreign file: render afresh (and, when storing, replace it)
            return {}

    def _get(self, keys: dict[str, bytes], salt: bytes) -> dict[str, Result]:
        wanted = {key: rel for rel, key in keys.items()}
        found: dict[str, Result] = {}
        # One pass over the rows of this salt, in key order: faster than 10,000 lookups.
        for key, meta in self.db.execute("SELECT key, meta FROM metadata WHERE salt = ?", (salt,)):
            rel = wanted.get(key)
            if rel is not None:
                result = records.unpacked(meta)
                if result is not None:
                    found[rel] = result
        return found

    def put(self, key: bytes, result: Result, salt: bytes) -> Result:
        """Store a fresh result under its key and the salt the key was made with; return it without
        its texts when they are stored, else as it is."""
        entry, problems, depends = result
        if self.db is None or not self.store:
            return result
        bare = dataclasses.replace(entry, markdown="", rendered="") if entry else None
        meta = (bare, problems, depends)
        self.db.execute("INSERT OR REPLACE INTO metadata VALUES (?, ?, ?)", (salt, key, records.packed(meta)))
        self.db.execute("INSERT OR REPLACE INTO texts VALUES (?, ?, ?)",
                        (key, entry.rendered if entry else "", entry.markdown if entry else ""))
        return meta

    def commit(self) -> None:
        if self.db is not None and self.store:
            self.db.commit()

    def retain(self, keys: Iterable[bytes]) -> None:
        """Drop results no current file uses, once they outnumber the live ones."""
        if self.db is None or not self.store:
            return
        keys = list(keys)
        count = self.db.execute("SELECT count(*) FROM metadata").fetchone()[0]
        if count <= 2 * len(keys) + 100:
            return
        with self.db:
            self.db.execute("CREATE TEMP TABLE live (key BLOB PRIMARY KEY)")
            self.db.executemany("INSERT OR IGNORE INTO live VALUES (?)", ((k,) for k in keys))
            for table in ("metadata", "texts"):
                self.db.execute(f"DELETE FROM {table} WHERE key NOT IN (SELECT key FROM live)")
            self.db.execute("DROP TABLE live")

    def signatures(self) -> dict[str, tuple[bytes, bytes]]:
        """Return each content file's last known (stat signature, digest)."""
        if self.db is None:
            return {}
        try:
            return {path: (signature, digest) for path, signature, digest in self.db.execute("SELECT * FROM files")}
        except sqlite3.DatabaseError:
            return {}

    def keep_signatures(self, seen: dict[str, tuple[bytes, bytes]]) -> None:
        """Remember new digests (a removed file's row stays: a hundred bytes, and harmless)."""
        if self.db is None or not self.store:
            return
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)",
                                ((path, sig, digest) for path, (sig, digest) in seen.items()))

    def reader(self) -> "TextStore | None":
        """Return a store to read texts from after a read-only load, or None if there is no cache."""
        return TextStore(self.path) if self.db is not None else None


class TextStore:
    """Reads entries' Markdown and HTML from the cache when an output asks for them.

    One read-only connection per thread (the preview serves from threads) and per process: a
    forked child (parallel.map_forked) opens its own, as SQLite requires.
    """

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()

    def text(self, key: bytes, column: str) -> str:
        if column not in ("markdown", "html"):
            raise ValueError(column)
        row = self._db().execute(f"SELECT {column} FROM texts WHERE key = ?", (key,)).fetchone()
        if row is None:
            # Another build pruned the cache between this one's load and now; building again is enough.
            raise LookupError(f"{self.path}: a rendered entry went missing while this build ran; run it again")
        return row[0]

    def _db(self) -> sqlite3.Connection:
        db, pid = getattr(self.local, "db", None), os.getpid()
        if db is None or self.local.pid != pid:  # the parent's connection is left alone, never closed here
            db = self.local.db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=30)
            self.local.pid = pid
        return db

    def __getstate__(self) -> dict:  # a connection cannot be pickled; the path is enough
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])
