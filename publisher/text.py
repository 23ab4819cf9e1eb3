"""Plain-text helpers shared by content, markup and the outputs: cleaning and slugs."""

from __future__ import annotations

import re
import unicodedata

# XML 1.0 forbids C0 controls but tab, LF and CR, and U+FFFE/U+FFFF; C1 controls are
# "discouraged" and never meant by an editor, so they go too.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")

# Azerbaijani and Russian letters to ASCII, for slugs of titles in any of our languages.
_TRANSLIT = str.maketrans({
    "ə": "e", "Ə": "E", "ğ": "g", "Ğ": "G", "ı": "i", "İ": "I", "ş": "sh", "Ş": "Sh",
    "ç": "ch", "Ç": "Ch", "ö": "o", "Ö": "O", "ü": "u", "Ü": "U",
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
})


def clean_text(text: str) -> str:
    """Remove characters XML 1.0 cannot carry, so they never reach a feed or an email."""
    return _FORBIDDEN.sub("", text)


def slugify(text: str, max_length: int = 60) -> str:
    """Make a lowercase ASCII slug from a title in English, Azerbaijani or Russian."""
    text = text.lower().translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:max_length].rstrip("-") or "entry"
