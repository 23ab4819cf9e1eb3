"""Outputs as units: a few files rendered together, and a key that changes whenever their bytes may.

A unit's key is a digest of the site-wide inputs (config, templates, catalogs, static files,
publisher's code and library versions) and of the unit's own inputs: the values its
template is given, with each entry standing for its fingerprint (a digest of its file, its
images and the config it was rendered with) and for the one thing about it that changes with
the clock (whether its action is open). A warm build renders only units whose key it has not
seen, so a key must cover everything the unit's bytes depend on; tests build warm and cold
after every kind of change and compare the trees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator

from publisher.config import CONFIG_NAME, Config
from publisher.content import Entry

# Libraries whose versions can change a rendered file (render.py keys the entries' own on theirs).
LIBRARIES = ("jinja2", "markupsafe", "babel", "css-inline", "feedgen", "lxml")
_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)  # what a template computes (the rest is its text)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', re.S)
_CLOCK = re.compile(r"\bnow\b")
_CLOCK_FOR_ACTIONS = re.compile(r"\baction_open\(\s*now\s*\)")


@dataclass(frozen=True)
class Unit:
    """Output files rendered together, and the key of everything they are rendered from."""

    key: bytes
    render: Callable[[], Iterable[tuple[str, bytes]]]


class Keys:
    """Makes the keys of one build's units."""

    def __init__(self, config: Config, folders: Iterable[Path], locale: Path, now: datetime):
        self.now = now
        self.base = site_fingerprint(config, tuple(folders), locale)
        self.reads_clock = templates_read_clock(tuple(folders))
        if self.reads_clock:
            # A template that shows the clock itself may change at any moment: key on it.
            self.base = hashlib.blake2b(self.base + now.isoformat().encode(), digest_size=20).digest()

    def key(self, *parts: object) -> bytes:
        pieces: list[bytes] = [self.base]
        self._add(parts, pieces)
        return hashlib.blake2b(b"".join(pieces), digest_size=20).digest()

    def unit(self, render: Callable[[], Iterable[tuple[str, bytes]]], *parts: object) -> Unit:
        return Unit(self.key(*parts), render)

    # The two commonest units, their keys' bytes written out: a large site has 10,000 entry
    # pages and as many images, keyed in every build. The bytes are exactly unit()'s (tests/test_units.py).

    def entry_unit(self, render: Callable[[], Iterable[tuple[str, bytes]]], entry: Entry,
                   translations: tuple[Entry, ...]) -> Unit:
        """unit(render, "entry", entry, translations)."""
        now = self.now
        pieces = [self.base, b"\x01(\x01S5:entry\x01E", entry.fingerprint, b"o" if entry.action_open(now) else b"c",
                  b"\x01("]
        for other in translations:
            pieces += (b"\x01E", other.fingerprint, b"o" if other.action_open(now) else b"c")
        pieces.append(b"\x01)\x01)")
        return Unit(hashlib.blake2b(b"".join(pieces), digest_size=20).digest(), render)

    def file_unit(self, render: Callable[[], Iterable[tuple[str, bytes]]], name: str, digest: bytes) -> Unit:
        """unit(render, "file", name, digest)."""
        data = name.encode("utf-8", "surrogatepass")
        key = b"%s\x01(\x01S4:file\x01S%d:%s\x01B%d:%s\x01)" % (self.base, len(data), data, len(digest), digest)
        return Unit(hashlib.blake2b(key, digest_size=20).digest(), render)

    def _add(self, value: object, pieces: list[bytes]) -> None:
        kind = type(value)  # the commonest kinds first: this runs for every value of every unit
        if kind is Entry:
            pieces += (b"\x01E", value.fingerprint, b"o" if value.action_open(self.now) else b"c")
        elif kind is str or isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
            pieces += (b"\x01S%d:" % len(data), data)
        elif kind is tuple or kind is list:
            pieces.append(b"\x01(")
            self._add_items(value, pieces)
            pieces.append(b"\x01)")
        elif kind is dict:
            pieces.append(b"\x01{")
            self._add_items([part for name in sorted(value) for part in (name, value[name])], pieces)
            pieces.append(b"\x01}")
        elif value is None or kind in (bool, int, float):
            pieces.append(b"\x01%r" % (value,))
        elif kind is bytes:
            pieces += (b"\x01B%d:" % len(value), value)
        elif kind in (datetime, date):
            pieces += (b"\x01D", value.isoformat().encode())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            pieces.append(b"\x01C" + kind.__qualname__.encode())
            for name in _field_names(kind):
                self._add(getattr(value, name), pieces)
        else:
            raise TypeError(f"no key for a {kind.__name__}: say what it is rendered from")

    def _add_items(self, items: Iterable[object], pieces: list[bytes]) -> None:
        """_add each item in turn.

        Entries, words, digests and small leaves, the bulk of every key (a feed holds 100
        entries, each listing a dict of page numbers), are added here rather than by a call
        each: the same bytes as _add's branches, a third of the time at 24,000 units.
        """
        now = self.now
        for item in items:
            kind = type(item)
            if kind is Entry:
                pieces += (b"\x01E", item.fingerprint, b"o" if item.action_open(now) else b"c")
            elif kind is str:
                data = item.encode("utf-8", "surrogatepass")
                pieces += (b"\x01S%d:" % len(data), data)
            elif kind is bytes:
                pieces += (b"\x01B%d:" % len(item), item)
            elif item is None or kind is bool or kind is int:
                pieces.append(b"\x01%r" % (item,))
            else:
                self._add(item, pieces)


@lru_cache(maxsize=None)
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(kind))


def site_fingerprint(config: Config, folders: tuple[Path, ...], locale: Path) -> bytes:
    """Hash what every output depends on: config, templates, static files, catalogs, code, libraries."""
    from publisher.render import code_version  # render imports the markup stack; only its hash is needed

    digest = hashlib.blake2b(digest_size=20)
    digest.update((config.root / CONFIG_NAME).read_bytes() + b"\0" + code_version() + library_versions())
    for folder in (*folders, locale):
        for path in _files(folder):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def templates_read_clock(folders: tuple[Path, ...]) -> bool:
    """Tell whether a template uses `now` for anything but asking if an action is open."""
    return any(_reads_clock(path.read_text("utf-8", errors="replace"))
               for folder in folders for path in _files(folder) if path.suffix in (".html", ".txt", ".xml"))


def _reads_clock(source: str) -> bool:
    code = " ".join(_STRING.sub('""', block) for block in _CODE.findall(source))
    return bool(_CLOCK.search(_CLOCK_FOR_ACTIONS.sub("", code)))


def _files(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)


@lru_cache(maxsize=1)
def library_versions() -> bytes:
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=none")
    return "\0".join(versions).encode()


class NoKeys(Keys):
    """For rendering every unit anyway (the preview, a single issue): keys are not computed."""

    def __init__(self) -> None:
        self.now = None
        self.base = b""
        self.reads_clock = False

    def key(self, *parts: object) -> bytes:
        return b""

    def entry_unit(self, render: Callable[[], Iterable[tuple[str, bytes]]], *parts: object) -> Unit:
        return Unit(b"", render)

    def file_unit(self, render: Callable[[], Iterable[tuple[str, bytes]]], *parts: object) -> Unit:
        return Unit(b"", render)


def rendered(units: Iterable[Unit]) -> Iterator[tuple[str, bytes]]:
    """Render every unit: all of its files, in order."""
    for unit in units:
        yield from unit.render()
