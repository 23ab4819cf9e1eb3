"""Know, without reading a file, that a build has nothing to do.

The scheduler builds again after every change and every few seconds; most of those builds
find nothing new. Before loading anything, the build hashes the name and stat signature
(size, modification and change times, inode) of every input: content/, the templates,
catalogs, publisher.toml, the redaction list, the issues ledger, publisher's code and its
libraries. If that signature is the one recorded by the last build, output/ is still the one
that build made, and the clock has not passed any moment at which the site changes (an
embargo lifting, an action expiring, an issue's publication time: the "horizon" the last
build recorded), the output would come out byte for byte the same, and the build stops.

Like git's index, a file changed within two seconds of being looked at is not trusted:
then there is no signature, and the build runs in full.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

from publisher import locations
from publisher.config import CONFIG_NAME, Config

if TYPE_CHECKING:
    from publisher.content import SourceFile

RACY_SECONDS = 2
_NAME = attrgetter("name")
# Every library whose upgrade can change an output; their files' signatures stand for their versions.
LIBRARIES = ("markdown", "nh3", "yaml", "PIL", "jinja2", "markupsafe", "babel", "css_inline", "feedgen", "lxml")


@dataclass(frozen=True)
class Record:
    """What the last complete build saw and made."""

    signature: str
    now: str  # the clock it built at
    horizon: str  # the first later moment at which the site changes, or "" if none is known
    output: list  # identity (device, inode) of the output folder it left
    result: list  # files, entries, warnings


def record_path(config: Config) -> Path:
    return config.path("state") / "cache" / "build.stamp"


@dataclass
class Survey:
    """One look at every input: their signature, and what the build needs of content/ from the same walk."""

    signature: str | None  # None if an input was changed too recently to trust
    root: str  # the content folder
    # Its files, sorted as source_files sorts them: parts, whether a link, a regular file's stat_signature
    # (None: withheld by a walk that found the build would stop early).
    listed: list[tuple[tuple[str, ...], bool, bytes | None]] | None

    def take_content(self) -> tuple[list[SourceFile], dict[str, bytes]]:
        """Return content/'s files as content.source_files lists them, and each regular one's stat_signature by path.

        Once: the listing is let go (at 10,000 entries it is megabytes the build no longer needs).
        """
        from publisher.content import SourceFile  # not at the top: the early stop never parses an entry

        if self.listed is None:  # a second call would otherwise see an empty content/, and unpublish it all
            raise ValueError("this survey's listing was withheld or already taken: take a new one")
        files, signatures = [], {}
        root = self.root if self.root.endswith("/") else self.root + "/"  # as os.path.join(root, *parts) would
        for parts, link, signature in self.listed:
            name = "/".join(parts)
            file = SourceFile(name, root + name, link)
            files.append(file)
            if signature is not None:
                signatures[file.path] = signature
        self.listed = None
        return files, signatures


def stat_signature(info: os.stat_result) -> bytes:
    """Return what tells a file's bytes have not changed without reading them (git's index trusts the same)."""
    return _signature(info).encode()


def _signature(info: os.stat_result) -> str:
    # One text for the walk's lines and for FileDigests: a file the walk saw is then trusted unread.
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino} {info.st_dev}"


def survey(config: Config) -> Survey:
    """Take the inputs' signature; list content/ on the way, so the build need not walk it again."""
    digest = hashlib.blake2b(digest_size=20)
    newest = 0.0
    content = config.path("content")
    folders = [content, config.path("templates"), locations.BUILTIN_TEMPLATES,
               locations.LOCALE_DIR, Path(__file__).parent]
    files = [config.root / CONFIG_NAME, config.path("state") / locations.ISSUES_LEDGER,
             config.root / config.lint.redaction_list, *_library_files()]
    for path in files:
        newest = max(newest, _add(digest, str(path), path))
    listed: list[tuple[tuple[str, ...], bool, bytes | None]] = []
    for folder in folders:
        digest.update(b"\0folder " + os.fsencode(folder))
        if folder.is_dir():
            newest = max(newest, _walk(digest, folder, listed if folder == content else None))
    listed.sort()  # by parts, as source_files sorts (no two files have the same parts)
    racy = newest > time.time() - RACY_SECONDS  # the clock decides only whether to trust times
    return Survey(None if racy else digest.hexdigest(), os.fspath(content), listed)


def _walk(digest, folder: Path, collect: list | None = None) -> float:
    """Hash a folder's files' names and signatures, depth first; return the newest time seen.

    With `collect`, also list the files content.source_files would (hidden and `_` names
    left out, links listed but not followed), each regular one with its stat_signature.
    Each folder's lines are hashed at once: 20,000 files' worth of calls is a tenth of a second.
    """
    newest = 0.0
    pending: list[tuple[str, tuple[str, ...] | None]] = [(os.fspath(folder), ())]  # path, parts if listed
    while pending:
        path, parts = pending.pop()
        with os.scandir(path) as listing:
            items = sorted(listing, key=_NAME)
        lines = []
        for item in items:
            name = item.name
            if name == "__pycache__":
                continue  # Python's own byte code, rewritten by the first run after a change
            here = None if parts is None or name.startswith((".", "_")) else (*parts, name)
            if item.is_dir(follow_symlinks=False):
                lines.append(f"\0dir {item.path}")
                pending.append((item.path, here))
            elif item.is_symlink():
                line, latest = _line(item.path, Path(item.path))
                lines.append(line)
                newest = max(newest, latest)
                if collect is not None and here:
                    collect.append((here, True, None))
            else:
                info = item.stat(follow_symlinks=False)
                signature = _signature(info)
                lines.append(f"\0{item.path} {signature} {info.st_mode}")
                if info.st_mtime > newest:
                    newest = info.st_mtime
                if info.st_ctime > newest:
                    newest = info.st_ctime
                if collect is not None and here and item.is_file(follow_symlinks=False):
                    collect.append((here, False, signature.encode()))  # stat_signature(info), made once
        digest.update("".join(lines).encode("utf-8", "surrogateescape"))
    return newest


def _add(digest, name: str, path: Path) -> float:
    """Hash a file's name and signature (and its target's, for a link); return its newest time."""
    line, newest = _line(name, path)
    digest.update(line.encode("utf-8", "surrogateescape"))
    return newest


def _line(name: str, path: Path) -> tuple[str, float]:
    """Return the line a file's name and signature (and its target's, for a link) hash as, and its newest time."""
    newest = 0.0
    parts = []
    for follow in (False, True):
        try:
            info = os.stat(path, follow_symlinks=follow)
        except OSError:
            parts.append(f"\0{name} missing {follow}")
            continue
        parts.append(f"\0{name} {_signature(info)} {info.st_mode}")
        newest = max(newest, info.st_mtime, info.st_ctime)
    return "".join(parts), newest


def _library_files() -> list[Path]:
    found = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        found.append(Path(spec.origin) if spec and spec.origin else Path(f"/nonexistent/{name}"))
    return found


def unchanged(config: Config, now: datetime, current: str | None) -> Record | None:
    """Return the last build's record if a build at `now` with inputs of signature `current` would change nothing."""
    if current is None:
        return None
    try:
        record = Record(**json.loads(record_path(config).read_text(encoding="utf-8")))
        info = config.path("output").stat()
        if record.signature != current or record.output != [info.st_dev, info.st_ino]:
            return None
        if now < datetime.fromisoformat(record.now):
            return None  # the clock went back: embargoed entries must disappear again
        if record.horizon and now >= datetime.fromisoformat(record.horizon):
            return None
        return record
    except (OSError, ValueError, TypeError):
        return None


def save(config: Config, current: str | None, now: datetime, horizon: datetime | None, result: tuple) -> None:
    """Record a complete build (or forget the last one, when its inputs could not be trusted)."""
    path = record_path(config)
    if current is None:
        path.unlink(missing_ok=True)
        return
    info = config.path("output").stat()
    record = Record(current, now.isoformat(), horizon.isoformat() if horizon else "", [info.st_dev, info.st_ino],
                    list(result))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record.__dict__), encoding="utf-8")
    os.replace(temporary, path)
