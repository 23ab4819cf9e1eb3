"""Weekly issues: published entries grouped by week, numbered, frozen once sent.

An issue covers one ISO week (Monday to Sunday in the site's time zone) of one language
and goes out at the configured weekday and time after that week ends. What was sent is
kept in an append-only ledger, `state/issues-sent.jsonl`, one JSON object a line:

    {"lang": "en", "week": "2026-W47", "number": 15, "sent_at": "...", "entries": [ids]}

The ledger is the truth about sent issues: their entries and numbers never change. An
entry that is in no sent issue but is dated in or before the last sent week (it arrived
late, or was backdated) goes into the issue after the last sent one, so it still reaches
subscribers. The first record of a language also lists, under "archived", the entries of
the older weeks that were never mailed (a site's history): they stay in those weeks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from publisher.config import WEEKDAYS, Config
from publisher.content import Entry
from publisher.locations import ISSUES_LEDGER
from publisher.locking import exclusive
from publisher.problems import EditorError, Problem
from publisher.website import Site

LEDGER = ISSUES_LEDGER
ORDER = ("alert", "campaign")  # open actions first, alerts before campaigns


@dataclass(frozen=True)
class Issue:
    """One weekly newsletter issue of one language."""

    lang: str
    number: int
    week: str  # ISO week key like "2026-W47", in the site time zone
    starts: datetime  # Monday 00:00 site time
    entries: tuple[Entry, ...]  # email order: open alerts, campaigns with open actions, then updates
    sent: bool
    publishes: datetime  # when it goes out: the configured weekday and time after its week
    # Ids of entries in earlier, never-mailed weeks of a language that has sent nothing
    # yet; recording this issue as sent keeps them in those archive-only weeks. They are the
    # first `earlier` ids of `unsent`, which every issue of the language shares: a copy per
    # issue made 1,500 issues of a ten-year archive copy 7 million ids.
    unsent: tuple[str, ...] = field(default=(), compare=False, repr=False)
    earlier: int = field(default=0, compare=False, repr=False)

    @property
    def archived(self) -> tuple[str, ...]:
        return self.unsent[:self.earlier]


@dataclass(frozen=True)
class SentIssue:
    """One line of the ledger: an issue as it was sent."""

    lang: str
    week: str
    number: int
    sent_at: datetime
    entries: tuple[str, ...]
    archived: tuple[str, ...] = ()


def issue_dir(issue: Issue) -> str:
    """Return the output folder of an issue, e.g. newsletter/en/2026-W47/."""
    return f"newsletter/{issue.lang}/{issue.week}/"


def week_of(moment: datetime, config: Config) -> str:
    """Return the ISO week key of a moment in the site's time zone."""
    year, week, _ = moment.astimezone(config.tz).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(week: str, config: Config) -> datetime:
    """Return Monday 00:00 site time of an ISO week key; ValueError if it is not one."""
    year, _, number = week.partition("-W")
    if not (year.isdigit() and len(year) == 4 and number.isdigit() and len(number) == 2):
        raise ValueError(f"not an ISO week such as 2026-W47: {week!r}")
    monday = date.fromisocalendar(int(year), int(number), 1)
    return datetime.combine(monday, time(0, 0), tzinfo=config.tz)


def publication_time(week: str, config: Config) -> datetime:
    """Return when a week's issue goes out: the first configured weekday and time after the week."""
    return _publication_time(week_start(week, config), config)


def _publication_time(starts: datetime, config: Config) -> datetime:
    days, moment = _sending(config.newsletter.weekday, config.newsletter.time)
    return datetime.combine(starts.date() + timedelta(days=7 + days), moment, tzinfo=config.tz)


@lru_cache(maxsize=None)  # parsed once, not for each of a ten-year archive's 1,500 issues
def _sending(weekday: str, clock: str) -> tuple[int, time]:
    """Return the configured sending day (days after Monday) and time of day."""
    hour, minute = (int(part) for part in clock.split(":"))
    return WEEKDAYS.index(weekday.lower()), time(hour, minute)


def issues_of(site: Site, ledger: Iterable[SentIssue] | None = None) -> tuple[Issue, ...]:
    """Return every issue of every language, oldest first (the ledger read from state/ by default)."""
    if ledger is None:  # the archive and the newsletter both ask, once per build
        if "issues" not in site.derived:
            site.derived["issues"] = _issues_of(site, read_ledger(site.config))
        return site.derived["issues"]
    return _issues_of(site, tuple(ledger))


def _issues_of(site: Site, records: tuple[SentIssue, ...]) -> tuple[Issue, ...]:
    languages = site.config.languages
    issues = [issue for lang in languages
              for issue in _issues_in(site, lang, [r for r in records if r.lang == lang])]
    return tuple(sorted(issues, key=lambda i: (i.starts, languages.index(i.lang))))


def find_issue(site: Site, week: str, lang: str, ledger: Iterable[SentIssue] | None = None) -> Issue | None:
    """Return the issue of one week and language, or None when that week made none."""
    return next((i for i in issues_of(site, ledger) if i.week == week and i.lang == lang), None)


def published_issues(site: Site) -> tuple[Issue, ...]:
    """Return the issues readers can see at site.now: sent, or due by their publication time."""
    return tuple(issue for issue in issues_of(site) if issue.sent or issue.publishes <= site.now)


def due_issues(site: Site, grace: timedelta | None = None,
               ledger: Iterable[SentIssue] | None = None) -> tuple[Issue, ...]:
    """Return the unsent issues whose time has come at site.now, oldest first.

    Only issues after a language's last sent one count, and, given a `grace`, only those
    whose publication time is at most that long ago, so a fresh site does not mail its
    whole history.
    """
    records = read_ledger(site.config) if ledger is None else tuple(ledger)
    last = {r.lang: r.week for r in sorted(records, key=lambda r: _week_order(r.week))}
    return tuple(
        issue for issue in issues_of(site, records)
        if not issue.sent
        and issue.publishes <= site.now
        and (grace is None or site.now - issue.publishes <= grace)
        and (issue.lang not in last or _week_order(issue.week) > _week_order(last[issue.lang]))
    )


def _issues_in(site: Site, lang: str, records: list[SentIssue]) -> list[Issue]:
    config = site.config
    records = sorted(records, key=lambda r: _week_order(r.week))
    frozen: dict[str, str] = {}
    for record in records:
        for entry_id in record.entries + record.archived:
            frozen.setdefault(entry_id, record.week if entry_id in record.entries else "")
    after_last = _next_week(records[-1].week, config) if records else None
    weeks: dict[str, list[Entry]] = defaultdict(list)
    for entry in site.in_language(lang):
        weeks[_week_for(entry, frozen, after_last, config)].append(entry)
    sent = {r.week: r for r in records}
    for week in sent:
        weeks.setdefault(week, [])
    ordered = []
    for week in sorted(weeks, key=_week_order):
        starts = week_start(week, config)
        publishes = _publication_time(starts, config)
        # The week's entries came newest first (site order: date, then path), so a stable sort on
        # the group alone keeps them newest first within each group, without 10,000 timestamps.
        # Only an entry with an action can move up: most weeks have none and are in order already.
        group = weeks[week]
        entries = tuple(sorted(group, key=lambda e: _email_group(e, publishes))
                        if any(e.action is not None for e in group) else group)
        ordered.append((week, starts, publishes, entries))
    unsent = () if records else tuple(e.id for _, _, _, entries in ordered for e in entries)
    issues: list[Issue] = []
    number = earlier = 0
    for week, starts, publishes, entries in ordered:
        record = sent.get(week)
        number = record.number if record else number + 1
        issues.append(Issue(
            lang=lang, number=number, week=week, starts=starts, entries=entries,
            sent=record is not None, publishes=publishes, unsent=unsent, earlier=earlier if unsent else 0,
        ))
        earlier += len(entries)
    return issues


def _week_for(entry: Entry, frozen: dict[str, str], after_last: str | None, config: Config) -> str:
    """Return the week an entry is mailed in: its sent issue's, its own, or the next unsent one."""
    if entry.id in frozen:
        return frozen[entry.id] or week_of(entry.date, config)
    own = week_of(entry.date, config)
    if after_last and _week_order(own) < _week_order(after_last):
        return after_last  # late or backdated: it missed its week's mail
    return own


def _email_group(entry: Entry, moment: datetime) -> int:
    """Return an entry's place in an email: open alerts, then campaigns with open actions, then the rest."""
    return ORDER.index(entry.type) if entry.type in ORDER and entry.action_open(moment) else len(ORDER)


def _week_order(week: str) -> tuple[int, int]:
    year, _, number = week.partition("-W")
    return int(year), int(number)


def _next_week(week: str, config: Config) -> str:
    return week_of(week_start(week, config) + timedelta(days=7, hours=12), config)


# The ledger ------------------------------------------------------------------------


def ledger_path(config: Config) -> Path:
    return config.path("state") / LEDGER


def read_ledger(config: Config) -> tuple[SentIssue, ...]:
    """Read every sent issue from the ledger; raise EditorError naming any bad line."""
    path = ledger_path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    rel = path.relative_to(config.root).as_posix() if path.is_relative_to(config.root) else str(path)
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(_record_from(json.loads(line), config))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(rel, number, f"unreadable ledger line ({exc}); restore it from a backup"))
    if problems:
        raise EditorError(problems)
    return tuple(records)


def _record_from(data: dict, config: Config) -> SentIssue:
    week_start(data["week"], config)
    sent_at = datetime.fromisoformat(data["sent_at"])
    if sent_at.tzinfo is None:
        raise ValueError("sent_at needs an offset")
    if not isinstance(data["number"], int) or data["number"] < 1:
        raise ValueError("number must be a positive whole number")
    ids = data["entries"]
    archived = data.get("archived", [])
    if not all(isinstance(i, str) for i in [*ids, *archived]):
        raise ValueError("entry ids must be strings")
    return SentIssue(str(data["lang"]), data["week"], data["number"], sent_at, tuple(ids), tuple(archived))


def record_sent(config: Config, issue: Issue, when: datetime) -> SentIssue:
    """Append an issue to the ledger as sent at `when`; recording it again changes nothing."""
    path = ledger_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_name(f".{LEDGER}.lock")):
        existing = read_ledger(config)
        for record in existing:
            if record.lang == issue.lang and record.week == issue.week:
                return record
        first = not any(r.lang == issue.lang for r in existing)
        record = SentIssue(issue.lang, issue.week, issue.number, when, tuple(e.id for e in issue.entries),
                           issue.archived if first else ())
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        _replace(path, old + _record_line(record).encode("utf-8"))
    return record


def _record_line(record: SentIssue) -> str:
    data = {"lang": record.lang, "week": record.week, "number": record.number,
            "sent_at": record.sent_at.isoformat(), "entries": list(record.entries)}
    if record.archived:
        data["archived"] = list(record.archived)
    return json.dumps(data, ensure_ascii=False) + "\n"


def _replace(path: Path, data: bytes) -> None:
    """Write a file whole: a temporary file, fsync, rename over, fsync the folder."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
