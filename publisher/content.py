"""Read `content/**/*.md` into frozen `Entry` values, reporting every problem at once."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, NamedTuple, Protocol
from urllib.parse import urlsplit

import yaml

from publisher.config import Config
from publisher.problems import Problem
from publisher.text import clean_text
from publisher.tracking import strip_tracking

TYPES = ("update", "campaign", "alert")
REQUIRED = ("title", "type", "date")
FIELDS = (
    "title", "type", "date", "lang", "summary", "tags", "draft", "id", "key", "updated",
    "correction", "expires", "action", "retracted", "image", "image_alt",
)
ACTION_FIELDS = ("label", "url", "deadline", "targets", "asks")
TARGET_FIELDS = ("name", "title", "address")
SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
TAG = re.compile(r"[^\W_]+(?:[-_][^\W_]+)*")
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
ACTION_SCHEMES = ("https:", "http:", "mailto:")
MAX_TAGS = 30
# What may not stand in a URL as written (RFC 3986): whitespace, controls, quotes and angle brackets.
_URL_UNSAFE = re.compile(r'[\s\x00-\x1f\x7f"<>\\^`{|}]')


@dataclass(frozen=True)
class Target:
    """An official to write to."""

    name: str
    title: str = ""
    address: str = ""


@dataclass(frozen=True)
class Action:
    """The call to action of a campaign or alert."""

    label: str
    url: str  # as published: tracking parameters removed
    deadline: datetime | None = None
    targets: tuple[Target, ...] = ()
    asks: tuple[str, ...] = ()
    written_url: str = ""  # as the editor wrote it, for the lint to name what was removed


@dataclass(frozen=True)
class Retraction:
    """A withdrawn entry: its body is replaced by a notice, its id kept."""

    date: datetime
    reason: str


class TextStore(Protocol):
    def text(self, key: bytes, column: str) -> str: ...


@dataclass(frozen=True)
class Stored:
    """Where an entry's Markdown and HTML are kept: a store and the entry's key in it."""

    store: TextStore
    key: bytes

    def text(self, column: str) -> str:
        return self.store.text(self.key, column)


@dataclass(frozen=True)
class Entry:
    """One published (or draft, or embargoed) piece of writing."""

    path: str  # relative to the site root, e.g. content/2017/raids.md
    slug: str
    title: str
    type: str
    date: datetime
    lang: str
    id: str
    markdown: str = field(compare=False, repr=False)  # the body's Markdown source, when held in memory (read `body`)
    body_line: int
    summary: str = ""
    tags: tuple[str, ...] = ()
    draft: bool = False
    key: str = ""
    updated: datetime | None = None
    correction: str = ""
    expires: datetime | None = None
    action: Action | None = None
    retracted: Retraction | None = None
    image: str = ""
    image_alt: str = ""
    lines: tuple[tuple[str, int], ...] = ()
    rendered: str = field(default="", compare=False, repr=False)  # the body's HTML, when held in memory (read `html`)
    # Where the Markdown and HTML are kept instead, once rendered (render.py's cache): at
    # 10,000 entries they would be hundreds of MB in memory, and most builds need few of them.
    stored: Stored | None = field(default=None, compare=False, repr=False)
    fingerprint: bytes = field(default=b"", compare=False, repr=False)  # digest of everything the entry was made from
    place: bytes = field(init=False, compare=False, repr=False)  # place_digest(self)

    def __post_init__(self) -> None:
        # Made with the entry, so no copy (dataclasses.replace) can keep a stale one; the cache's
        # rows keep it, as they keep every field (records fills an entry without __init__).
        object.__setattr__(self, "place", place_digest(self))

    @property
    def body(self) -> str:
        """Return the Markdown source of the body."""
        return self.markdown if self.stored is None else self.stored.text("markdown")

    @property
    def html(self) -> str:
        """Return the body's sanitised HTML (empty before rendering)."""
        return self.rendered if self.stored is None else self.stored.text("html")

    @property
    def modified(self) -> datetime:
        """Return when the entry last changed in a way readers must see."""
        latest = self.date  # the first of equal moments wins, as max() would pick it
        for moment in (self.updated, self.retracted.date if self.retracted else None):
            if moment is not None and moment > latest:
                latest = moment
        return latest

    @property
    def translation_key(self) -> str:
        return self.key or self.id

    def line_of(self, name: str) -> int:
        """Return the line of a front-matter field, or of the opening '---'."""
        return dict(self.lines).get(name, 1)

    def is_published(self, now: datetime) -> bool:
        return not self.draft and self.date <= now

    def action_open(self, now: datetime) -> bool:
        return self.action is not None and self.retracted is None and (self.expires is None or now < self.expires)


# Where and when an entry sits in the site: its page's address (language, local date, slug),
# when it last changed, its translations' key and its tags. The sitemap shows no more of it,
# so a body or a title edit, the commonest changes, leave this digest as it was.
PLACE_FIELDS = ("slug", "lang", "date", "updated", "retracted", "key", "tags")


def place_digest(entry: Entry) -> bytes:
    """Return a digest of the entry's PLACE_FIELDS (their reprs: dates with their zones)."""
    return hashlib.blake2b(repr(tuple(getattr(entry, name) for name in PLACE_FIELDS)).encode(), digest_size=16).digest()


def escapes(path: Path, content: Path) -> bool:
    """Tell whether a file found by `source_files` leads outside content/ (through a symbolic link) or nowhere.

    `source_files` never descends into a linked folder, so only a link itself can lead out.
    """
    if not path.is_symlink():
        return False
    try:
        return not path.resolve(strict=True).is_relative_to(content.resolve())
    except (OSError, RuntimeError):  # a dangling link or a loop
        return True


class SourceFile(NamedTuple):
    """A file found under content/, named as strings: a build looks at 20,000 of them, and Paths cost."""

    name: str  # relative to content/, with forward slashes, e.g. 2017/raids.md
    path: str  # the full path, as the file system is asked for it
    link: bool  # a symbolic link (never followed while walking)

    @property
    def suffix(self) -> str:
        """Return the file name's last suffix, as Path.suffix would (".png"; "" for "README" or "x.")."""
        base = self.name.rpartition("/")[2]
        dot = base.rfind(".")
        return base[dot:] if 0 < dot < len(base) - 1 else ""

    def is_file(self) -> bool:
        """Tell whether it is a regular file; only a link needs asking, scandir told the rest apart while walking."""
        return not self.link or os.path.isfile(self.path)

    def leads_out(self, content: Path) -> bool:
        """Tell whether the file is a link leading outside content/ or nowhere (only a link can)."""
        return self.link and escapes(Path(self.path), content)


def source_files(content: Path) -> list[SourceFile]:
    """Return every file under `content` a build reads, sorted: entries and the files it copies.

    Hidden files and folders and `_` folders are skipped; links are listed but never followed,
    so that one leading out of content/ can be refused by name.
    """
    if not content.is_dir():
        return []
    found: list[tuple[tuple[str, ...], bool]] = []
    _walk(os.fspath(content), (), found)
    found.sort()  # by parts, as Paths sort; tuples of strings sort many times faster
    root = os.fspath(content)
    return [SourceFile("/".join(parts), os.path.join(root, *parts), link) for parts, link in found]


def _walk(folder: str, parts: tuple[str, ...], found: list[tuple[tuple[str, ...], bool]]) -> None:
    with os.scandir(folder) as entries:
        for item in entries:
            if item.name.startswith((".", "_")):
                continue
            if item.is_symlink():
                found.append(((*parts, item.name), True))
            elif item.is_file(follow_symlinks=False):
                found.append(((*parts, item.name), False))
            elif item.is_dir(follow_symlinks=False):
                _walk(item.path, (*parts, item.name), found)


def entry_files(content: Path, found: list[SourceFile] | None = None) -> list[SourceFile]:
    """Return the Markdown files under `content` (see source_files; pass its result if you have it)."""
    found = source_files(content) if found is None else found
    return [f for f in found if f.name.endswith(".md") and f.is_file()]


def parse_entry(rel: str, raw: bytes, config: Config) -> tuple[Entry | None, list[Problem]]:
    """Parse the bytes of the file at `rel` (relative to the site root) into an Entry."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, [Problem(rel, line, f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8")]
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    split = split_front_matter(text)
    if isinstance(split, Problem):
        return None, [Problem(rel, split.line, split.message)]
    front, body, body_line = split
    reader = _FieldReader(rel, config)
    fields = reader.parse(front)
    if fields is None:
        return None, reader.problems
    entry = reader.entry(PurePosixPath(rel), fields, clean_text(body), body_line)
    if fields.get("draft") is True and reader.problems:
        # An unfinished draft must not stop everyone else's publishing; it is left out.
        return None, [dataclasses.replace(p, warning=True, message=f"draft left out: {p.message}")
                      for p in reader.problems]
    return entry, reader.problems


def split_front_matter(text: str) -> tuple[str, str, int] | Problem:
    """Split `---` front matter from the body; return (front, body, first body line)."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return Problem("", 1, "no front matter: the file must start with a '---' line")
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() in ("---", "..."):
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1:]), index + 2
    return Problem("", 1, "the front matter is not closed: add a '---' line after it")


# libyaml's parser where it is built in (about ten times faster), Python's otherwise.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """Safe YAML that keeps dates as text, so we parse (and report) them ourselves."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FieldReader:
    """Check front-matter fields one by one, gathering every problem."""

    def __init__(self, rel: str, config: Config):
        self.rel = rel
        self.config = config
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    def problem(self, line: int, message: str, warning: bool = False) -> None:
        self.problems.append(Problem(self.rel, line, message, warning))

    def at(self, name: str) -> int:
        return self.lines.get(name, 1)

    def parse(self, front: str) -> dict[str, Any] | None:
        """Parse the YAML mapping, keeping each key's line; None if it cannot be read."""
        loader = _Loader(front)
        try:
            node = loader.get_single_node()
            if node is None:
                self.problem(1, "the front matter is empty: it needs title, type and date")
                return None
            if not isinstance(node, yaml.MappingNode):
                self.problem(2 + node.start_mark.line, "the front matter must be 'field: value' lines")
                return None
            if _has_alias(node):
                self.problem(2 + node.start_mark.line, "YAML anchors and aliases (& and *) are not allowed")
                return None
            fields: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = 2 + key_node.start_mark.line
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    self.problem(line, f"field names must be words, not {key!r}")
                    continue
                if key in fields:
                    self.problem(line, f"field '{key}' is given twice")
                    continue
                fields[key] = loader.construct_object(value_node, deep=True)
                self.lines[key] = line
            return fields
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = 2 + mark.line if mark else 1
            started = exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line
            where = f" ({exc.context} on line {2 + exc.context_mark.line})" if started else ""
            self.problem(line, f"YAML syntax error: {exc.problem or exc.context}{where}")
            return None
        except yaml.YAMLError as exc:
            self.problem(1, f"YAML syntax error: {exc}")
            return None
        except RecursionError:
            self.problem(1, "the front matter is nested too deeply to read")
            return None
        except (ValueError, OverflowError) as exc:  # e.g. a number of 5,000 digits
            self.problem(1, f"the front matter holds a value that cannot be read ({exc})")
            return None
        finally:
            loader.dispose()

    def entry(self, path: PurePosixPath, f: dict[str, Any], body: str, body_line: int) -> Entry | None:
        for name in f:
            if name not in FIELDS:
                close = difflib.get_close_matches(name, FIELDS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(self.at(name), f"unknown field '{name}'{hint}")
        for name in REQUIRED:
            value = f.get(name)
            if value is None or (isinstance(value, str) and not clean_text(value).strip()):
                self.problem(self.at(name), f"missing required field '{name}'")
        slug, file_lang = self.slug_and_lang(path)
        title = self.text(f, "title")
        kind = self.choice(f, "type", TYPES)
        date = self.date(f, "date")
        lang = self.lang(f, file_lang)
        summary = self.text(f, "summary")
        tags = self.tags(f)
        draft = self.flag(f, "draft")
        key = self.text(f, "key")
        if key and not SLUG.fullmatch(key):
            self.problem(self.at("key"), "'key' must be lowercase letters, digits and hyphens")
        updated = self.date(f, "updated")
        correction = self.text(f, "correction")
        expires = self.date(f, "expires")
        action = self.action(f, kind)
        retracted = self.retraction(f)
        image, image_alt = self.image(f)
        self.check_dates(date, updated, correction, expires, retracted)
        if not body.strip():
            self.problem(body_line if body_line > 1 else 1, "the body is empty: write the entry below the front matter")
        for offset, message in too_complex(body):
            self.problem(body_line + offset, message)
        if kind in ("campaign", "alert") and "action" not in f:
            article = "an" if kind[0] in "aeiou" else "a"
            self.problem(self.at("type"), f"{article} {kind} needs an 'action' (label and url of the call to action)")
        entry_id = self.entry_id(f, date, lang, slug)
        if any(not p.warning for p in self.problems):
            return None
        return Entry(
            path=self.rel, slug=slug, title=title, type=kind, date=date, lang=lang, id=entry_id,
            markdown=body, body_line=body_line, summary=summary, tags=tags, draft=draft, key=key,
            updated=updated, correction=correction, expires=expires, action=action,
            retracted=retracted, image=image, image_alt=image_alt, lines=tuple(sorted(self.lines.items())),
        )

    def slug_and_lang(self, path: PurePosixPath) -> tuple[str, str]:
        stem = path.stem
        file_lang = ""
        base, dot, suffix = stem.rpartition(".")
        if dot and suffix in self.config.languages:
            stem, file_lang = base, suffix
        if not SLUG.fullmatch(stem):
            self.problem(1, f"the file name '{path.name}' must be lowercase letters, digits and hyphens, "
                            f"optionally ending in .LANG (e.g. police-raids.az.md)")
        return stem, file_lang

    def text(self, f: dict, name: str) -> str:
        value = f.get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(self.at(name), f"'{name}' must be text")
            return ""
        return clean_text(str(value)).strip()

    def choice(self, f: dict, name: str, allowed: Iterable[str]) -> str:
        value = self.text(f, name)
        if value and value not in allowed:
            self.problem(self.at(name), f"unknown {name} '{value}' (use {_or(allowed)})")
        return value

    def flag(self, f: dict, name: str) -> bool:
        value = f.get(name, False)
        if not isinstance(value, bool):
            self.problem(self.at(name), f"'{name}' must be true or false")
            return True  # fail closed: an unreadable draft flag keeps the entry out
        return value

    def date(self, f: dict, name: str, line: int | None = None, value: Any = ...) -> datetime | None:
        value = f.get(name) if value is ... else value
        line = line or self.at(name)
        if value is None or value == "":
            return None
        parsed = parse_date(str(value), self.config) if isinstance(value, str) else None
        if parsed is None:
            self.problem(line, f"'{name}': cannot read {str(value)[:40]!r} as a date; use ISO 8601 "
                               f"such as 2017-09-25T10:00:00+04:00, in the years {MIN_YEAR} to {MAX_YEAR}")
        return parsed

    def lang(self, f: dict, file_lang: str) -> str:
        lang = self.text(f, "lang") or file_lang or self.config.default_language
        if lang not in self.config.languages:
            self.problem(self.at("lang"), f"unknown lang '{lang}' (use {_or(self.config.languages)})")
        elif file_lang and lang != file_lang:
            self.problem(self.at("lang"), f"lang '{lang}' does not match the file name, which ends in .{file_lang}")
        return lang

    def tags(self, f: dict) -> tuple[str, ...]:
        value = f.get("tags")
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            self.problem(self.at("tags"), "'tags' must be a list of words, e.g. [police, baku]")
            return ()
        if len(value) > MAX_TAGS:
            self.problem(self.at("tags"), f"{len(value)} tags is too many; give at most {MAX_TAGS}")
            return ()
        tags = []
        for tag in (clean_text(t).strip().lower() for t in value):
            if not TAG.fullmatch(tag):
                self.problem(self.at("tags"), f"tag {tag!r} must be one word (letters, digits, hyphens)")
            elif tag not in tags:
                tags.append(tag)
        return tuple(tags)

    def action(self, f: dict, kind: str) -> Action | None:
        value = f.get("action")
        line = self.at("action")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(line, "'action' must be a mapping with label and url")
            return None
        for name in value:
            if name not in ACTION_FIELDS:
                self.problem(line, f"unknown field 'action.{name}' (use {_or(ACTION_FIELDS)})")
        label = self.text(value, "label") if isinstance(value.get("label"), str) else ""
        url = value.get("url")
        if not label:
            self.problem(line, "'action' needs a 'label', the words on its button")
        if not isinstance(url, str) or not url.strip().lower().startswith(ACTION_SCHEMES):
            self.problem(line, "'action.url' must be an https:// or mailto: address")
            url = ""
        elif _URL_UNSAFE.search(url.strip()):
            self.problem(line, "'action.url' has spaces, quotes or angle brackets; encode them (%20) or fix the address")
            url = ""
        elif "@" in urlsplit(url.strip()).netloc:
            self.problem(line, "'action.url' carries a user name or password (user:pass@); never publish those")
            url = ""
        deadline = self.date(value, "action.deadline", line, value.get("deadline"))
        url = clean_text(url).strip()
        return Action(label=label, url=strip_tracking(url), written_url=url, deadline=deadline,
                      targets=self.targets(value.get("targets"), line), asks=self.asks(value.get("asks"), line))

    def targets(self, value: Any, line: int) -> tuple[Target, ...]:
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        targets = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or any(
                k not in TARGET_FIELDS or not isinstance(v, (str, type(None))) for k, v in item.items()
            ):
                self.problem(line, "each of 'action.targets' needs a 'name', and may have 'title' and 'address'")
                continue
            targets.append(Target(*(clean_text(item.get(k) or "").strip() for k in TARGET_FIELDS)))
        return tuple(targets)

    def asks(self, value: Any, line: int) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
            self.problem(line, "'action.asks' must be a list of demands, one sentence each")
            return ()
        return tuple(clean_text(a).strip() for a in value)

    def retraction(self, f: dict) -> Retraction | None:
        value = f.get("retracted")
        if value is None:
            return None
        line = self.at("retracted")
        if not isinstance(value, dict) or set(value) != {"date", "reason"} or not isinstance(value["reason"], str):
            self.problem(line, "'retracted' must have exactly a 'date' and a 'reason'")
            return None
        date = self.date(value, "retracted.date", line, value["date"])
        return Retraction(date, clean_text(value["reason"]).strip()) if date else None

    def image(self, f: dict) -> tuple[str, str]:
        image, alt = self.text(f, "image"), self.text(f, "image_alt")
        if image and not alt:
            self.problem(self.at("image"), "'image' needs 'image_alt', a description for readers who cannot see it")
        if alt and not image:
            self.problem(self.at("image_alt"), "'image_alt' is set but there is no 'image'")
        if image:
            content = self.config.path("content")
            target = (content / image.lstrip("/")).resolve()
            if "://" in image or image.startswith("//") or not image.startswith("/"):
                self.problem(self.at("image"), "'image' must be a local path under content/, e.g. /images/2023/x.png")
            elif not target.is_relative_to(content.resolve()) or not target.is_file():
                self.problem(self.at("image"), f"'image' {image} does not exist under content/")
        return image, alt

    def check_dates(self, date, updated, correction, expires, retracted) -> None:
        if updated and not correction:
            self.problem(self.at("updated"), "'updated' needs a 'correction' note telling readers what changed")
        if correction and not updated:
            self.problem(self.at("correction"), "'correction' needs an 'updated' date")
        if date and updated and updated < date:
            self.problem(self.at("updated"), "'updated' is before 'date'")
        if date and expires and expires <= date:
            self.problem(self.at("expires"), "'expires' must be after 'date'")
        if date and retracted and retracted.date < date:
            self.problem(self.at("retracted"), "'retracted.date' is before 'date'")

    def entry_id(self, f: dict, date: datetime | None, lang: str, slug: str) -> str:
        pinned = self.text(f, "id")
        if pinned:
            if not URI.fullmatch(pinned):
                self.problem(self.at("id"), "'id' must be a URI such as tag:example.org,2024:en/slug")
            return pinned
        return derive_id(self.config, date, lang, slug) if date else ""


MAX_UNMATCHED = 100  # per paragraph; Python-Markdown's inline patterns go quadratic beyond
MAX_DEPTH = 100
MAX_BODY = 2_000_000


BRACKETS = (("[", "]"), ("(", ")"), ("<", ">"))
_DEEP_LINE = re.compile(r"^[ >\t]{%d}" % (MAX_DEPTH + 1), re.MULTILINE)  # a line nested too deep


def too_complex(body: str) -> Iterable[tuple[int, str]]:
    """Find text Markdown would take minutes to render: (line offset, message) for each place."""
    if len(body) > MAX_BODY:
        yield 0, f"the body has {len(body):,} characters; split it into entries under {MAX_BODY:,}"
        return
    # A paragraph has no more unmatched openers than the body has openers: most bodies need no closer look.
    brackets = [(opener, closer) for opener, closer in BRACKETS if body.count(opener) > MAX_UNMATCHED]
    if not brackets and not _DEEP_LINE.search(body):
        return
    offset = 0
    for block in body.split("\n\n"):
        for opener, closer in brackets:
            unmatched = block.count(opener) - block.count(closer)
            if unmatched > MAX_UNMATCHED:
                yield offset, (f"this paragraph has {unmatched} unmatched '{opener}', too many to render; "
                               f"close them or write \\{opener}")
        for number, line in enumerate(block.split("\n")):
            depth = len(line) - len(line.lstrip(" >\t"))
            if depth > MAX_DEPTH:
                yield offset + number, f"this line is nested {depth} levels deep; at most {MAX_DEPTH} can be rendered"
                break
        offset += block.count("\n") + 2


def derive_id(config: Config, date: datetime, lang: str, slug: str) -> str:
    """Make an RFC 4151 tag URI from the site's authority, the entry's local date, lang and slug."""
    authority = config.tag_authority.split(",")[0]
    day = date.astimezone(config.tz).date().isoformat()
    return f"tag:{authority},{day}:{lang}/{slug}"


MIN_YEAR, MAX_YEAR = 1900, 2999


def parse_date(text: str, config: Config) -> datetime | None:
    """Read ISO 8601; a time without an offset is in the site's time zone."""
    text = text.strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?", text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return None  # the time zone arithmetic of years 1 and 9999 overflows
    if value.tzinfo is None:
        value = value.replace(tzinfo=config.tz)
    return value


def find_collisions(entries: list[Entry], config: Config) -> list[Problem]:
    """Report entries that claim the same id, the same page, or one language twice for a key."""
    from publisher.urls import entry_page

    claims: dict[str, dict[Any, Entry]] = {"id": {}, "page": {}, "key and lang": {}}
    found: dict[str, list[Problem]] = {label: [] for label in claims}
    for entry in sorted(entries, key=_by_path):  # one pass for all three: 10,000 entries are read once
        wanted = [("id", entry.id), ("page", entry_page(entry, config))]
        if entry.key:
            wanted.append(("key and lang", (entry.key, entry.lang)))
        for label, value in wanted:
            first = claims[label].setdefault(value, entry)
            if first is not entry:
                line = entry.line_of("id") if label == "id" else 1
                found[label].append(Problem(entry.path, line, f"{label} {_show(value)} is already claimed by {first.path}"))
    return [problem for problems in found.values() for problem in problems]


def _by_path(entry: Entry) -> str:
    return entry.path


def _show(value: Any) -> str:
    return "/".join(value) if isinstance(value, tuple) else repr(value)


def _has_alias(node: yaml.Node, seen: set[int] | None = None) -> bool:
    """Tell whether a node is reached twice: the composer resolves `*alias` to the same node."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return True
    seen.add(id(node))
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else (
        node.value if isinstance(node, yaml.SequenceNode) else [])
    return any(_has_alias(child, seen) for child in children)


def _or(options: Iterable[str]) -> str:
    options = list(options)
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]

