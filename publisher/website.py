"""The site as readers see it at one moment: published entries and how they relate."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from publisher.config import Config
from publisher.content import Entry
from publisher.problems import Problem


@dataclass(frozen=True)
class Site:
    """Everything an output needs: config, the clock, and the entries readers may see."""

    config: Config
    now: datetime
    entries: tuple[Entry, ...]  # published only, newest first
    hidden: tuple[Entry, ...] = field(default=())  # drafts and embargoed, for preview only
    warnings: tuple[Problem, ...] = field(default=())  # found while reading entries, e.g. unfinished drafts
    # What modules derive from the site once per build (its issues); not part of its value.
    derived: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def at(cls, config: Config, entries: tuple[Entry, ...], now: datetime, warnings: tuple[Problem, ...] = ()) -> "Site":
        """Split entries into those published at `now` and the rest."""
        shown: list[Entry] = []
        hidden: list[Entry] = []
        for entry in entries:  # one pass: a large site has 10,000 of them
            (shown if entry.is_published(now) else hidden).append(entry)
        shown.sort(key=_newest_first)
        return cls(config, now, tuple(shown), tuple(hidden), warnings)

    def in_language(self, lang: str) -> tuple[Entry, ...]:
        return self._by_language.get(lang, ())

    def translations(self, entry: Entry) -> tuple[Entry, ...]:
        """Return the other published languages of an entry, in the site's language order."""
        if not entry.key:
            return ()
        order = self.config.languages
        siblings = [e for e in self._by_key.get(entry.key, ()) if e is not entry]
        return tuple(sorted(siblings, key=lambda e: order.index(e.lang)))

    def with_tag(self, lang: str, tag: str) -> tuple[Entry, ...]:
        return self._by_tag.get((lang, tag), ())

    def tags(self, lang: str) -> tuple[str, ...]:
        """Return a language's tags in use, sorted."""
        return tuple(tag for tag, _ in self.tag_counts(lang))

    def tag_counts(self, lang: str) -> tuple[tuple[str, int], ...]:
        """Return each of a language's tags with how many entries have it, by tag (an entry names a tag once)."""
        return tuple(sorted((tag, len(tagged)) for (language, tag), tagged in self._by_tag.items() if language == lang))

    def open_actions(self, lang: str) -> tuple[Entry, ...]:
        """Return the entries of a language whose action is open at `now` (asked for by several pages)."""
        key = ("open actions", lang)
        if key not in self.derived:
            self.derived[key] = tuple(e for e in self.in_language(lang) if e.action_open(self.now))
        return self.derived[key]

    @cached_property
    def _by_language(self) -> dict[str, tuple[Entry, ...]]:
        groups: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries:
            groups[entry.lang].append(entry)
        return {lang: tuple(items) for lang, items in groups.items()}

    @cached_property
    def _by_tag(self) -> dict[tuple[str, str], tuple[Entry, ...]]:
        # An entry names a tag once (content's parser drops repeats): 40,000 tags at 10k entries,
        # so no dict.fromkeys per entry, and each process of a build makes this index once.
        groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        for entry in self.entries:
            lang = entry.lang
            for tag in entry.tags:
                groups[lang, tag].append(entry)
        return {group: tuple(items) for group, items in groups.items()}

    @cached_property
    def _by_key(self) -> dict[str, list[Entry]]:
        groups: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.entries:
            if entry.key:
                groups[entry.key].append(entry)
        return groups


def _newest_first(entry: Entry) -> tuple:
    return (-entry.date.timestamp(), entry.path)
