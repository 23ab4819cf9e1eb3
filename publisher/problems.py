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
        return f"{self.path}:{self.line}: {kind}{self.message}"


class EditorError(Exception):
    """Input an editor must fix; carries every problem found, never just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(sorted(problems, key=sort_key))
        super().__init__("\n".join(str(p) for p in self.problems))


def sort_key(problem: Problem) -> tuple:
    """Sort by file, then line, then message, so reports are stable."""
    return (problem.path, problem.line, problem.message)


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    """Return the problems that stop a build (not warnings)."""
    return [p for p in problems if not p.warning]
