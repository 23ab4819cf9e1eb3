"""Weekly issues: grouping by week, numbering, the sent ledger, late entries, what is due."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from publisher.build import load_site
from publisher.config import load_config
from publisher.issues import (
    due_issues, find_issue, issue_dir, issues_of, ledger_path, publication_time, read_ledger, record_sent, week_of,
)
from publisher.problems import EditorError
from publisher.templates import Templates

BAKU = ZoneInfo("Asia/Baku")
ACTION = "{label: Sign the letter, url: 'https://example.org/sign'}"


def load(site, now):
    config = load_config(site.root)
    return load_site(config, Templates(config), now)


def ids(issue):
    return [e.slug for e in issue.entries]


def test_entries_are_grouped_by_iso_week_in_the_site_time_zone(site):
    # Sunday 23:30 in Baku is still week 46; Monday 00:30 in Baku (Sunday in UTC) is week 47.
    site.entry("a.md", title="Sunday night", date="2026-11-15T23:30:00+04:00")
    site.entry("b.md", title="Monday early", date="2026-11-15T20:30:00Z")
    site.entry("c.md", title="Tuesday", date="2026-11-17T10:00:00+04:00")
    issues = issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))
    assert [(i.week, ids(i)) for i in issues] == [("2026-W46", ["a"]), ("2026-W47", ["c", "b"])]
    assert issues[1].starts == datetime(2026, 11, 16, 0, 0, tzinfo=BAKU)
    assert issues[1].publishes == datetime(2026, 11, 23, 9, 0, tzinfo=BAKU)
    assert issue_dir(issues[1]) == "newsletter/en/2026-W47/"


def test_every_published_entry_is_in_exactly_one_issue_per_language(site):
    dates = ["2026-10-01", "2026-10-02", "2026-10-20", "2026-11-03", "2026-11-04", "2026-11-19"]
    for n, day in enumerate(dates):
        lang = ("en", "az", "ru")[n % 3]
        site.entry(f"e{n}.{lang}.md", title=f"Entry {n}", date=f"{day}T10:00:00+04:00")
    site.entry("draft.md", title="Draft", date="2026-10-01T10:00:00+04:00", draft="true")
    site.entry("later.md", title="Embargoed", date="2026-12-01T10:00:00+04:00")
    now = datetime(2026, 11, 22, tzinfo=timezone.utc)
    live = load(site, now)
    issues = issues_of(live)
    placed = [e.id for i in issues for e in i.entries]
    assert sorted(placed) == sorted(e.id for e in live.entries)
    assert len(placed) == len(set(placed))
    for issue in issues:
        assert {e.lang for e in issue.entries} == {issue.lang}
        assert {week_of(e.date, live.config) for e in issue.entries} == {issue.week}
    for lang in ("en", "az", "ru"):
        assert [i.number for i in issues if i.lang == lang] == list(range(1, 1 + sum(i.lang == lang for i in issues)))


def test_a_week_with_nothing_new_makes_no_issue(site):
    site.entry("a.md", title="A", date="2026-11-02T10:00:00+04:00")
    site.entry("b.md", title="B", date="2026-11-18T10:00:00+04:00")
    issues = issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))
    assert [(i.week, i.number) for i in issues] == [("2026-W45", 1), ("2026-W47", 2)]
    assert find_issue(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)), "2026-W46", "en") is None


def test_email_order_is_open_alerts_then_open_campaigns_then_the_rest(site):
    site.entry("update.md", title="Update", date="2026-11-17T12:00:00+04:00")
    site.entry("old-campaign.md", title="Closed campaign", type="campaign", date="2026-11-17T11:00:00+04:00",
               action=ACTION, expires="2026-11-18T00:00:00+04:00")
    site.entry("campaign.md", title="Campaign", type="campaign", date="2026-11-16T10:00:00+04:00", action=ACTION)
    site.entry("alert.md", title="Alert", type="alert", date="2026-11-16T09:00:00+04:00", action=ACTION)
    issue = issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))[0]
    assert ids(issue) == ["alert", "campaign", "update", "old-campaign"]


def test_each_issue_is_in_email_order_even_with_equal_dates_and_late_entries(site):
    """Issues sort only by group and rely on the site's newest-first order within: it must equal the full order."""
    from publisher.issues import _email_group

    def _email_order(entry, moment):  # group, then newest first, then path
        return (_email_group(entry, moment), -entry.date.timestamp(), entry.path)

    for number in range(12):  # equal dates, a path apart; and kinds, open and closed, mixed
        kind = {"type": "campaign", "action": ACTION} if number % 3 == 0 else {}
        if number % 4 == 1:  # alerts: some still open when the issue goes out, some closed by then
            closes = "2026-11-20T00:00:00+04:00" if number % 8 == 5 else "2026-12-20T00:00:00+04:00"
            kind = {"type": "alert", "action": ACTION, "expires": closes}
        site.entry(f"e{number:02d}.md", title=f"E{number}", date=f"2026-11-1{6 + number % 3}T10:00:00+04:00", **kind)
    site.entry("late.md", title="Late", date="2026-10-01T10:00:00+04:00")
    for issue in issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc))):
        assert issue.entries == tuple(sorted(issue.entries, key=lambda e: _email_order(e, issue.publishes)))
    assert len(issue.entries) == 12


def test_a_sent_issue_never_changes_and_late_entries_go_to_the_next_issue(site):
    site.entry("first.md", title="First", date="2026-11-10T10:00:00+04:00")
    sent_at = datetime(2026, 11, 16, 9, 0, 5, tzinfo=BAKU)
    live = load(site, sent_at)
    (issue,) = due_issues(live)
    assert (issue.week, issue.number, issue.sent) == ("2026-W46", 1, False)
    record = record_sent(live.config, issue, sent_at)
    assert record.entries == (issue.entries[0].id,)

    # Backdated into the sent week and into an older week: both go out in the next issue.
    site.entry("backdated.md", title="Backdated", date="2026-11-11T10:00:00+04:00")
    site.entry("older.md", title="Older", date="2026-10-01T10:00:00+04:00")
    later = load(site, datetime(2026, 11, 30, tzinfo=timezone.utc))
    issues = issues_of(later)
    assert [(i.week, i.number, i.sent, ids(i)) for i in issues] == [
        ("2026-W46", 1, True, ["first"]),
        ("2026-W47", 2, False, ["backdated", "older"]),
    ]


def test_recording_twice_changes_nothing_and_the_ledger_is_readable_json_lines(site):
    site.entry("a.az.md", title="Xəbər", date="2026-11-10T10:00:00+04:00")
    live = load(site, datetime(2026, 11, 16, 6, tzinfo=timezone.utc))
    (issue,) = due_issues(live)
    when = datetime(2026, 11, 16, 9, 1, tzinfo=BAKU)
    first = record_sent(live.config, issue, when)
    again = record_sent(live.config, issue, when + timedelta(hours=1))
    assert first == again
    lines = ledger_path(live.config).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data == {"lang": "az", "week": "2026-W46", "number": 1, "sent_at": "2026-11-16T09:01:00+04:00",
                    "entries": [issue.entries[0].id]}
    assert read_ledger(live.config) == (first,)
    assert not any(p.name.startswith(".issues-sent.jsonl.") and p.name != ".issues-sent.jsonl.lock"
                   for p in ledger_path(live.config).parent.iterdir())


def test_a_sites_history_stays_in_its_weeks_after_the_first_send(site):
    site.entry("history.md", title="History", date="2015-01-20T10:00:00+04:00")
    site.entry("recent.md", title="Recent", date="2026-11-10T10:00:00+04:00")
    live = load(site, datetime(2026, 11, 16, 6, tzinfo=timezone.utc))
    due = due_issues(live, grace=timedelta(days=2))
    assert [i.week for i in due] == ["2026-W46"]  # the grace keeps 2015 from being mailed
    record_sent(live.config, due[0], live.now)
    assert json.loads(ledger_path(live.config).read_text())["archived"] == [live.entries[1].id]
    site.entry("found.md", title="Found in a drawer", date="2016-03-01T10:00:00+04:00")
    issues = issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))
    assert [(i.week, i.number, ids(i)) for i in issues] == [
        ("2015-W04", 1, ["history"]), ("2026-W46", 2, ["recent"]), ("2026-W47", 3, ["found"])]


def test_a_missed_week_rolls_into_the_next_issue_once_a_later_one_is_sent(site):
    site.entry("w45.md", title="W45", date="2026-11-03T10:00:00+04:00")
    site.entry("w46.md", title="W46", date="2026-11-10T10:00:00+04:00")
    site.entry("w47.md", title="W47", date="2026-11-17T10:00:00+04:00")
    live = load(site, datetime(2026, 11, 23, 6, tzinfo=timezone.utc))
    w45, w46, w47 = issues_of(live)
    record_sent(live.config, w45, live.now)
    record_sent(live.config, w47, live.now)  # W46 was never sent
    issues = issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))
    assert [(i.week, i.number, i.sent, ids(i)) for i in issues] == [
        ("2026-W45", 1, True, ["w45"]), ("2026-W47", 3, True, ["w47"]), ("2026-W48", 4, False, ["w46"])]


def test_due_issues_at_a_moment(site):
    site.entry("a.md", title="A", date="2026-11-10T10:00:00+04:00")
    site.entry("b.ru.md", title="Б", date="2026-11-11T10:00:00+04:00")
    before = load(site, datetime(2026, 11, 16, 8, 59, tzinfo=BAKU))
    assert due_issues(before) == ()
    at = load(site, datetime(2026, 11, 16, 9, 0, tzinfo=BAKU))
    assert [(i.lang, i.week) for i in due_issues(at)] == [("en", "2026-W46"), ("ru", "2026-W46")]
    record_sent(at.config, due_issues(at)[0], at.now)
    assert [(i.lang, i.week) for i in due_issues(at)] == [("ru", "2026-W46")]
    late = load(site, datetime(2026, 11, 20, tzinfo=BAKU))
    assert due_issues(late, grace=timedelta(hours=6)) == ()
    assert [i.lang for i in due_issues(late)] == ["ru"]


def test_publication_time_follows_the_configured_day_time_and_zone(site):
    site.write("publisher.toml", site.root.joinpath("publisher.toml").read_text()
               .replace('timezone = "Asia/Baku"', 'timezone = "Europe/Berlin"')
               + 'weekday = "friday"\ntime = "07:30"\n')
    config = load_config(site.root)
    # The week of the October change (2026-10-25): the issue goes out on Friday in winter time.
    assert publication_time("2026-W43", config) == datetime(2026, 10, 30, 7, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert publication_time("2026-W43", config).utcoffset() == timedelta(hours=1)
    assert publication_time("2026-W42", config).utcoffset() == timedelta(hours=2)


def test_a_damaged_ledger_is_reported_with_its_line(site):
    site.entry("a.md", title="A", date="2026-11-10T10:00:00+04:00")
    site.write("state/issues-sent.jsonl", '{"lang": "en", "week": "2026-W45", "number": 1, '
                                          '"sent_at": "2026-11-09T09:00:00+04:00", "entries": []}\n{"lang": "en"\n')
    with pytest.raises(EditorError) as error:
        issues_of(load(site, datetime(2026, 11, 30, tzinfo=timezone.utc)))
    assert [(p.path, p.line) for p in error.value.problems] == [("state/issues-sent.jsonl", 2)]


def test_build_writes_only_issues_that_went_out_or_are_due(site):
    site.entry("a.md", title="A", date="2026-11-10T10:00:00+04:00")
    site.entry("b.md", title="B", date="2026-11-18T10:00:00+04:00")
    site.build(datetime(2026, 11, 20, tzinfo=timezone.utc))
    tree = site.tree()
    assert {p for p in tree if p.startswith("newsletter/")} == {
        "newsletter/en/2026-W46/index.html", "newsletter/en/2026-W46/issue.txt", "newsletter/en/2026-W46/issue.eml",
        "newsletter/en/2026-W46/issue-discreet.eml"}


def test_issue_command_builds_one_issue_outside_output(site, tmp_path):
    site.entry("a.az.md", title="Polis basqını", date="2026-11-18T10:00:00+04:00")
    shown = site.cli("issue", "2026-W47", "--lang", "az", "--now", "2026-11-20T00:00:00Z")
    assert shown.returncode == 0, shown.stderr
    assert "Polis basqını" in shown.stdout and "Həftəlik bülleten № 1" in shown.stdout
    out = tmp_path / "preview"
    written = site.cli("issue", "2026-W47", "--lang", "az", "--now", "2026-11-20T00:00:00Z", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "issue-discreet.eml", "issue.eml", "issue.txt"]
    assert written.stdout.split() == [str(out / n) for n in ("index.html", "issue.txt", "issue.eml", "issue-discreet.eml")]
    assert not site.output.exists()
    missing = site.cli("issue", "2026-W40", "--lang", "az", "--now", "2026-11-20T00:00:00Z")
    assert missing.returncode == 1 and "no issue for 2026-W40 in 'az'" in missing.stderr
    bad = site.cli("issue", "2026-W99")
    assert bad.returncode == 2 and "ISO week" in bad.stderr
    inside = site.cli("issue", "2026-W47", "--lang", "az", "--now", "2026-11-20T00:00:00Z", "--out", "output/x")
    assert inside.returncode == 1 and "inside the output folder" in inside.stderr


def test_the_last_days_of_a_year_belong_to_its_week_53(site):
    site.entry("eve.md", title="New Year's Day", date="2027-01-01T10:00:00+04:00")
    site.entry("after.md", title="Monday", date="2027-01-04T10:00:00+04:00")
    issues = issues_of(load(site, datetime(2027, 1, 20, tzinfo=timezone.utc)))
    assert [(i.week, i.publishes) for i in issues] == [
        ("2026-W53", datetime(2027, 1, 4, 9, 0, tzinfo=BAKU)), ("2027-W01", datetime(2027, 1, 11, 9, 0, tzinfo=BAKU))]


def test_a_sent_issue_builds_to_the_same_bytes_after_more_is_published(site):
    site.entry("a.md", title="A", date="2026-11-10T10:00:00+04:00")
    sent_at = datetime(2026, 11, 16, 9, 0, tzinfo=BAKU)
    site.build(sent_at)
    before = site.tree()["newsletter/en/2026-W46/issue.eml"]
    live = load(site, sent_at)
    record_sent(live.config, due_issues(live)[0], sent_at)
    site.entry("late.md", title="Late", date="2026-11-12T10:00:00+04:00")
    site.build(datetime(2026, 11, 30, 9, 0, tzinfo=BAKU))
    tree = site.tree()
    assert tree["newsletter/en/2026-W46/issue.eml"] == before
    assert b"Late" in tree["newsletter/en/2026-W47/issue.txt"]


def test_two_alerts_with_one_file_name_are_an_editor_error(site):
    action = "{label: Act, url: 'https://example.org/act'}"
    site.entry("2025/stop.md", title="First", type="alert", date="2025-03-01T10:00:00+04:00", action=action)
    site.entry("2026/stop.md", title="Second", type="alert", date="2026-03-01T10:00:00+04:00", action=action)
    problems = [p for p in site.check(datetime(2026, 11, 30, tzinfo=timezone.utc)) if not p.warning]
    assert [(p.path, p.line) for p in problems] == [("content/2026/stop.md", 1)]
    assert "alerts/en/stop/ is already claimed by content/2025/stop.md" in problems[0].message
