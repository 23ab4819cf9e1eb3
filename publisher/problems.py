"""Editor-facing problems: one type, reported all at once as `path:line: message`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake an editor can fix, located in a file."""

    path: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{shown(self.path)}:{self.line}: {kind}{shown(self.message)}"


class EditorError(Exception):
    """Input an editor must fix; carries every problem found, never just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(sorted(problems, key=sort_key))
        super().__init__("\n".join(str(p) for p in self.problems))


# Direction overrides and isolates can make a terminal show a file name other than the real one.
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def shown(text: str) -> str:
    """Escape what would break a one-line report or disguise it: newlines, controls, direction marks."""
    if all(c.isprintable() and c not in _BIDI for c in text):
        return text
    return "".join(c if c.isprintable() and c not in _BIDI else f"\\u{ord(c):04x}" for c in text)


def sort_key(problem: Problem) -> tuple:
    """Sort by file, then line, then message, so reports are stable."""
    return (problem.path, problem.line, problem.message)
