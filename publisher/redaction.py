"""The redaction list: names that must never be published, kept only as salted hashes.

A name is folded to a spelling-free key before hashing, so one entry in the list matches
the ways Azerbaijani, Russian and English writers spell the same name: Əliyev, Aliyev,
Alíyev and Алиев all fold to `aliav`. The text of every entry file and every file name
under content/ is folded word by word, and each run of one to MAX_WORDS words is hashed
and looked up; a hit is reported by place, never by name.

The hashes keep names out of the repository and out of sight; they do not stop someone
who holds the list and a guess from confirming the guess, so keep the repository private.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import secrets
import tempfile
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from publisher.config import CONFIG_NAME, Config
from publisher.content import source_files
from publisher.problems import EditorError, Problem

# Files whose words are published as text: entries, and files copied as they are or read by the build.
TEXT_SUFFIXES = {".md", ".txt", ".html", ".htm", ".xml", ".svg", ".csv", ".json", ".css", ".js", ".po"}
FORMAT = "publisher-redactions 2"  # names the folding below; a change to it needs a new number
READABLE = ("1", "2")  # format 1 lists have no first-word tags
MAX_WORDS = 4
HEADER = (
    "# Names that must never be published, as salted hashes (never write a name here).\n"
    "# Add one with `publisher redact add`; `publisher check` fails where one appears.\n"
)

# Azerbaijani Cyrillic (in use until 1991) and Russian letters, spelt as an Azerbaijani or
# English writer would; the folding below then merges the remaining differences.
_CYRILLIC = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya", "ә": "ə", "ғ": "ğ", "һ": "h", "ҹ": "c", "ј": "y", "ө": "ö", "ү": "ü",
    "ҝ": "g", "қ": "q", "і": "i", "ї": "yi", "є": "ye", "ў": "u",
})
_LATIN = str.maketrans({"ə": "a", "ä": "a", "ı": "i", "ş": "sh", "ç": "ch", "ß": "ss", "ø": "o", "æ": "ae",
                        "đ": "d", "ł": "l", "œ": "oe"})
# Sounds that the three languages write differently, merged into one symbol each (order matters:
# digraphs first). Az c = дж = j; Az x = х = kh; Russian writes Az h as г or х, and Az q as г or к.
_SOUNDS = [("dzh", "J"), ("dj", "J"), ("zh", "J"), ("kh", "G"), ("sh", "S"), ("ch", "C"), ("ks", "G"),
           ("c", "J"), ("j", "J"), ("x", "G"), ("h", "G"), ("q", "G"), ("k", "G"), ("g", "G"), ("w", "v")]
_GLIDE = re.compile(r"y(?=[aeiou])")  # Алиев has no y where Aliyev has one; ю/я/ё start with one
_VOWELS = str.maketrans({"e": "a", "y": "i", "u": "o"})
# Case endings that Russian and Azerbaijani put on names (folded): Алиеву, Алиевым, Əliyevin, Əliyevdən.
_ENDINGS = ("dan", "da", "la", "nin", "imi", "oio", "om", "im", "oi", "iG", "in", "on", "a", "o", "i")
_WORD = re.compile(r"(?:[^\W\d_]|[\u0300-\u036f])+")
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


@dataclass(frozen=True)
class RedactionList:
    """A salt, the hashes of folded names, and the tags of their first words, as read from the list file.

    A tag is one byte of a salted hash of a name's first word. Scanning needs it: without it every
    run of up to four words in every spelling would be hashed (about 7,500 hashes per entry), with
    it only runs whose first word carries a listed tag are. One byte says next to nothing about the
    word: a wrong guess matches one time in 256.
    """

    salt: bytes
    hashes: frozenset[str]
    tags: frozenset[str] = frozenset()
    untagged: bool = False  # a format-1 list: every run must be hashed
    lines: frozenset[str] = frozenset()  # "hash" or "hash tag", as written
    seen: dict = field(default_factory=dict, compare=False, hash=False, repr=False)  # key -> listed?

    def hash(self, key: str) -> str:
        """Return the salted hash of a folded name."""
        return hashlib.blake2b(key.encode(), key=self.salt, person=b"redact", digest_size=32).hexdigest()

    def tag(self, word: str) -> str:
        """Return the one-byte salted tag of a folded first word."""
        return hashlib.blake2b(word.encode(), key=self.salt, person=b"redact-tag", digest_size=1).hexdigest()

    def listed(self, key: str) -> bool:
        """Tell whether a folded run is on the list; each distinct run is hashed once per build."""
        if key not in self.seen:
            self.seen[key] = self.hash(name_key([key])) in self.hashes
        return self.seen[key]

    def may_start(self, word: Word) -> bool:
        """Tell whether a listed name of two or more words may start with this word."""
        if self.untagged:
            return True
        found = self.seen.get(("tag",) + word.variants)
        if found is None:
            found = self.seen[("tag",) + word.variants] = any(self.tag(v) in self.tags for v in word.variants)
        return found


class Word(NamedTuple):
    """A word of a file, folded, with where it starts (a tuple: texts have many words)."""

    variants: tuple[str, ...]  # the folded word, then the word without a case ending
    line: int
    column: int


def fold(word: str) -> str:
    """Fold one word to the key shared by its spellings in Azerbaijani, Russian and English."""
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", word)).casefold()
    text = text.translate(_CYRILLIC).translate(_LATIN)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if "a" <= c <= "z")
    for sound, symbol in _SOUNDS:
        text = text.replace(sound, symbol)
    return _GLIDE.sub("", text).translate(_VOWELS)


def name_key(words: Iterable[str]) -> str:
    """Join folded words into one key; doubled letters count once (Məmmədov, Мамедов)."""
    return re.sub(r"(.)\1+", r"\1", "".join(words))


def words_of(text: str, first_line: int = 1) -> list[Word]:
    """Split text into folded words with their lines and columns."""
    found = []
    for number, line in enumerate(text.split("\n"), first_line):
        line = html.unescape(_INVISIBLE.sub("", line))
        for match in _WORD.finditer(line):
            variants = _variants(match.group(0))
            if variants:
                found.append(Word(variants, number, match.start() + 1))
    return found


@lru_cache(maxsize=200_000)
def _variants(word: str) -> tuple[str, ...]:
    """Return a word's folded form and its stems without case endings (texts repeat words)."""
    folded = fold(word)
    if not folded:
        return ()
    stems = [folded[: -len(e)] for e in _ENDINGS if folded.endswith(e) and len(folded) - len(e) >= 3]
    return tuple(dict.fromkeys([folded, *stems]))


def find(words: list[Word], redactions: RedactionList) -> Iterator[tuple[Word, int]]:
    """Yield (first word, word count) of every run of words whose folded form is on the list."""
    for start, first in enumerate(words):
        if any(redactions.listed(variant) for variant in first.variants):
            yield first, 1
            continue
        if not redactions.may_start(first):
            continue
        keys = list(first.variants)
        for count, word in enumerate(words[start + 1: start + MAX_WORDS], 2):
            keys = [key + variant for key in keys for variant in word.variants]
            if any(redactions.listed(key) for key in keys):
                yield first, count
                break


def scan(config: Config, entries: bool = True) -> list[Problem]:
    """Return an error for every place a build publishes from where a name on the list appears.

    With `entries=False` the text of entry files is left to `scan_entry`, which the build runs
    (cached) as it reads each entry.
    """
    redactions = load(config)
    if not redactions.hashes:
        return []
    content = config.path("content")
    problems = []
    for path in (Path(f.path) for f in source_files(content) if f.is_file()):
        rel = path.relative_to(config.root).as_posix()
        is_entry = path.suffix == ".md"
        if is_entry and not entries:
            continue
        if is_entry:
            problems += scan_entry(rel, path.relative_to(content).as_posix(), _read(path), redactions)
            continue
        problems += _scan_name(rel, path.relative_to(content).as_posix(), redactions)
        if path.suffix.lower() in TEXT_SUFFIXES:
            problems += _scan_text(_read(path), rel, redactions)
    # The site title, description and sender name go into every page and subject; site templates into every page.
    problems += _scan_text(_read(config.root / CONFIG_NAME), CONFIG_NAME, redactions)
    templates = config.path("templates")
    for path in sorted(templates.rglob("*")) if templates.is_dir() and templates.is_relative_to(config.root) else ():
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            problems += _scan_text(_read(path), path.relative_to(config.root).as_posix(), redactions)
    return problems


def scan_entry(rel: str, name: str, text: str, redactions: RedactionList) -> list[Problem]:
    """Return an error for each listed name in an entry file's name or text (`name`: under content/)."""
    if not redactions.hashes:
        return []
    return _scan_name(rel, name, redactions) + _scan_text(text, rel, redactions, entry=True)


def _scan_name(rel: str, name: str, redactions: RedactionList) -> list[Problem]:
    if any(True for _ in find(words_of(name.replace("/", "\n")), redactions)):
        return [Problem(rel, 1, "the file name or folder holds a name on the redaction list: rename it")]
    return []


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""  # reading the file reports it


def _scan_text(text: str, rel: str, redactions: RedactionList, entry: bool = False) -> list[Problem]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    places = _places(lines) if entry else ["the file"] * len(lines)
    return [Problem(rel, word.line, f"a name on the redaction list appears in {places[word.line - 1]} "
                                    f"(column {word.column}, {count} word{'s' * (count > 1)}): remove it")
            for word, count in find(words_of("\n".join(lines)), redactions)]


def _places(lines: list[str]) -> list[str]:
    """Name what each line of an entry file holds: a front-matter field or the body."""
    places, field, front = [], "the front matter", False
    for index, line in enumerate(lines):
        if (index == 0 and line.rstrip() == "---") or (front and line.rstrip() in ("---", "...")):
            front = index == 0
            places.append("the front matter")
            continue
        key = re.match(r"([A-Za-z_][\w-]*)\s*:", line) if front else None
        field = f"the field '{key.group(1)}'" if key else field
        places.append(field if front else "the body")
    return places


def list_path(config: Config) -> Path:
    return config.root / config.lint.redaction_list


def load(config: Config) -> RedactionList:
    """Read the list file; a missing file is an empty list, a damaged one an editor error."""
    path = list_path(config)
    rel = config.lint.redaction_list
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RedactionList(b"", frozenset())
    except (OSError, UnicodeDecodeError) as exc:
        raise EditorError([Problem(rel, 1, f"cannot read the redaction list: {exc}")])
    salt, hashes, tags, lines, problems, untagged = b"", set(), set(), set(), [], False
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("format:"):
            version = line.removeprefix("format:").strip()
            if version not in READABLE:
                problems.append(Problem(rel, number, f"unknown format; this publisher reads '{FORMAT}'"))
            untagged = version == "1"
        elif line.startswith("salt:"):
            salt = bytes.fromhex(line.removeprefix("salt:").strip()) if _is_hex(line[5:].strip(), 32) else b""
            if not salt:
                problems.append(Problem(rel, number, "the salt must be 32 hexadecimal digits"))
        elif _is_hex(line.split()[0], 64) and (len(line.split()) == 1 or _is_hex(line.split()[-1], 2)):
            hashes.add(line.split()[0].lower())
            tags.update(part.lower() for part in line.split()[1:])
            lines.add(line.lower())
        else:
            problems.append(Problem(rel, number, "not a hash: the list holds only hashes; add names with "
                                                 "`publisher redact add`"))
    if hashes and not salt:
        problems.append(Problem(rel, 1, "the redaction list has hashes but no 'salt:' line"))
    if problems:
        raise EditorError(problems)
    return RedactionList(salt, frozenset(hashes), frozenset(tags), untagged, frozenset(lines))


def add(config: Config, name: str) -> int:
    """Add a name's hash to the list, creating it with a fresh salt; return how many it holds."""
    words = [w for w in _WORD.findall(name) if fold(w)]
    if not words:
        raise EditorError([Problem(config.lint.redaction_list, 1, "the name has no letters to match")])
    if len(words) > MAX_WORDS:
        raise EditorError([Problem(config.lint.redaction_list, 1,
                                   f"a name may have at most {MAX_WORDS} words; add its parts separately")])
    redactions = load(config)
    if redactions.untagged and redactions.hashes:
        raise EditorError([Problem(config.lint.redaction_list, 1, "this list is in format 1; start a new list (the "
                                   "old hashes cannot be converted without the names) and add every name again")])
    salt = redactions.salt or secrets.token_bytes(16)
    redactions = RedactionList(salt, redactions.hashes)
    folded = [fold(w) for w in words]
    digest = redactions.hash(name_key(folded))
    line = digest + (f" {redactions.tag(folded[0])}" if len(folded) > 1 else "")
    lines = {kept for kept in load(config).lines if kept.split()[0] != digest} | {line}
    _write(list_path(config), salt, lines)
    return len(lines)


def _write(path: Path, salt: bytes, hashes: Iterable[str]) -> None:
    """Write the list atomically; sorted, so the file does not tell in which order names came."""
    text = HEADER + f"format: {FORMAT.split()[-1]}\nsalt: {salt.hex()}\n" + "".join(f"{h}\n" for h in sorted(hashes))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".redactions-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _is_hex(text: str, length: int) -> bool:
    return bool(re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", text))


def refuse(config: Config, entries: bool = True) -> None:
    """Raise EditorError if a name on the list appears anywhere a build would publish from."""
    problems = scan(config, entries)
    if problems:
        raise EditorError(problems)
