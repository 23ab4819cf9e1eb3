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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from publisher.config import CONFIG_NAME, Config
from publisher.content import entry_files
from publisher.problems import EditorError, Problem

# Files whose words are published as text: entries, and files copied as they are or read by the build.
TEXT_SUFFIXES = {".md", ".txt", ".html", ".htm", ".xml", ".svg", ".csv", ".json", ".css", ".js", ".po"}
FORMAT = "publisher-redactions 1"  # names the folding below; a change to it needs a new number
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
    """A salt and the hashes of folded names, as read from the list file."""

    salt: bytes
    hashes: frozenset[str]

    def hash(self, key: str) -> str:
        """Return the salted hash of a folded name."""
        return hashlib.blake2b(key.encode(), key=self.salt, person=b"redact", digest_size=32).hexdigest()


@dataclass(frozen=True)
class Word:
    """A word of a file, folded, with where it starts."""

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
            folded = fold(match.group(0))
            if folded:
                found.append(Word(_variants(folded), number, match.start() + 1))
    return found


def _variants(folded: str) -> tuple[str, ...]:
    stems = [folded[: -len(e)] for e in _ENDINGS if folded.endswith(e) and len(folded) - len(e) >= 3]
    return tuple(dict.fromkeys([folded, *stems]))


def find(words: list[Word], redactions: RedactionList) -> Iterator[tuple[Word, int]]:
    """Yield (first word, word count) of every run of words whose folded form is on the list."""
    listed: dict[str, bool] = {}  # texts repeat words; hash each joined key once

    def hit(key: str) -> bool:
        if key not in listed:
            listed[key] = redactions.hash(name_key([key])) in redactions.hashes
        return listed[key]

    for start in range(len(words)):
        keys = [""]
        for count, word in enumerate(words[start: start + MAX_WORDS], 1):
            keys = [key + variant for key in keys for variant in word.variants]
            if any(hit(key) for key in keys):
                yield words[start], count
                break


def scan(config: Config) -> list[Problem]:
    """Return an error for every place a build publishes from where a name on the list appears."""
    redactions = load(config)
    if not redactions.hashes:
        return []
    content = config.path("content")
    problems = []
    for path in _published_files(content):
        rel = path.relative_to(config.root).as_posix()
        name = path.relative_to(content).as_posix()
        if any(True for _ in find(words_of(name.replace("/", "\n")), redactions)):
            problems.append(Problem(rel, 1, "the file name or folder holds a name on the redaction list: rename it"))
        if path.suffix.lower() in TEXT_SUFFIXES:
            problems += _scan_text(path, rel, redactions, entry=path.suffix == ".md")
    # The site title, description and sender name go into every page and subject; site templates into every page.
    problems += _scan_text(config.root / CONFIG_NAME, CONFIG_NAME, redactions)
    templates = config.path("templates")
    for path in sorted(templates.rglob("*")) if templates.is_dir() and templates.is_relative_to(config.root) else ():
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            problems += _scan_text(path, path.relative_to(config.root).as_posix(), redactions)
    return problems


def _scan_text(path: Path, rel: str, redactions: RedactionList, entry: bool = False) -> list[Problem]:
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return []  # reading the file reports it
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


def _published_files(content: Path) -> list[Path]:
    """Return the files a build reads: entries and the files it copies."""
    if not content.is_dir():
        return []
    files = set(entry_files(content))
    files |= {p for p in content.rglob("*") if p.is_file() and p.suffix != ".md"
              and not any(part.startswith((".", "_")) for part in p.relative_to(content).parts)}
    return sorted(files)


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
    salt, hashes, problems = b"", set(), []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("format:"):
            if line.removeprefix("format:").strip() != FORMAT.split()[-1]:
                problems.append(Problem(rel, number, f"unknown format; this publisher reads '{FORMAT}'"))
        elif line.startswith("salt:"):
            salt = bytes.fromhex(line.removeprefix("salt:").strip()) if _is_hex(line[5:].strip(), 32) else b""
            if not salt:
                problems.append(Problem(rel, number, "the salt must be 32 hexadecimal digits"))
        elif _is_hex(line, 64):
            hashes.add(line.lower())
        else:
            problems.append(Problem(rel, number, "not a hash: the list holds only hashes; add names with "
                                                 "`publisher redact add`"))
    if hashes and not salt:
        problems.append(Problem(rel, 1, "the redaction list has hashes but no 'salt:' line"))
    if problems:
        raise EditorError(problems)
    return RedactionList(salt, frozenset(hashes))


def add(config: Config, name: str) -> int:
    """Add a name's hash to the list, creating it with a fresh salt; return how many it holds."""
    words = [w for w in _WORD.findall(name) if fold(w)]
    if not words:
        raise EditorError([Problem(config.lint.redaction_list, 1, "the name has no letters to match")])
    if len(words) > MAX_WORDS:
        raise EditorError([Problem(config.lint.redaction_list, 1,
                                   f"a name may have at most {MAX_WORDS} words; add its parts separately")])
    redactions = load(config)
    if not redactions.salt:
        redactions = RedactionList(secrets.token_bytes(16), redactions.hashes)
    hashes = redactions.hashes | {redactions.hash(name_key(fold(w) for w in words))}
    _write(list_path(config), redactions.salt, hashes)
    return len(hashes)


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


def refuse(config: Config) -> None:
    """Raise EditorError if a name on the list appears anywhere a build would publish from."""
    problems = scan(config)
    if problems:
        raise EditorError(problems)
