"""Fingerprint what a build reads (content, templates, publisher.toml) by content, not by mtime."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from publisher import redaction
from publisher.config import CONFIG_NAME, Config

# Timestamps are coarse on some file systems: a file changed within this window of its
# last hashing may still show the old stat, so it is hashed again (git's "racy clean" rule).
RACY_SECONDS = 2.0


@dataclass
class SourceHasher:
    """Hash every source file, re-reading a file only when its stat says it may have changed."""

    _cache: dict[Path, tuple[tuple[int, ...], float, bytes]] = field(default_factory=dict)

    def fingerprint(self, config: Config) -> str:
        """Return one hex digest over every source file's path and bytes."""
        total = hashlib.sha256()
        seen = set()
        for path, rel in source_files(config):
            digest = self._digest(path)
            if digest is None:
                continue  # vanished while we looked: the next check sees the new state
            seen.add(path)
            total.update(rel.encode("utf-8") + b"\0" + digest)
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return total.hexdigest()

    def _digest(self, path: Path) -> bytes | None:
        try:
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
            cached = self._cache.get(path)
            if cached and cached[0] == key and st.st_ctime < cached[1] - RACY_SECONDS:
                return cached[2]
            hashed_at = time.time()
            digest = hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            return None
        self._cache[path] = (key, hashed_at, digest)
        return digest


def source_files(config: Config) -> Iterator[tuple[Path, str]]:
    """Yield (path, label) of every file a build reads, in a stable order."""
    yield config.root / CONFIG_NAME, CONFIG_NAME
    for path in outside_files(config):
        yield path, f"file:{path}"
    for name in ("content", "templates"):
        folder = config.path(name)
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                yield path, f"{name}/{rel.as_posix()}"


def outside_files(config: Config) -> list[Path]:
    """Return the single files a build reads besides content and templates.

    The redaction list stops a build that names someone on it; the sent-issues ledger
    decides what the issue pages show (`publisher send` may add to it by hand).
    """
    from publisher.issues import ledger_path

    return [redaction.list_path(config), ledger_path(config)]


def is_source(config: Config, path: Path) -> bool:
    """Tell whether a changed path is one a build reads (not output/, state/ or editor backups)."""
    path = path.resolve() if path.is_absolute() else (config.root / path).resolve()
    if path == (config.root / CONFIG_NAME).resolve() or path == (redaction.list_path(config)).resolve():
        return True
    for name in ("content", "templates"):
        folder = config.path(name).resolve()
        if path.is_relative_to(folder):
            return not any(part.startswith(".") for part in path.relative_to(folder).parts)
    return False
