"""`publisher schedule`: on time, exactly once, across restarts, kills, outages and DST changes.

The real APScheduler runs in a subprocess (`python -m publisher schedule`) with short real
intervals; `--once --now ISO` runs are the controllable clock.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import CONFIG, ScratchSite, entry_text

from publisher import timetable
from publisher.autopublish import Runner
from publisher.locking import SchedulerBusy
from publisher.schedule import run_once
from publisher.schedule_ledger import Ledger

UTC = timezone.utc
T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
FAST = "\n[schedule]\nalert_check_seconds = 1\nretry_seconds = 1\nretry_max_seconds = 2\n"


def iso(moment: datetime) -> str:
    return moment.isoformat()


def entry_paths(site: ScratchSite) -> set[str]:
    """Return the entry pages in output/ (en/YYYY/MM/slug/)."""
    return {p.parent.name for p in site.output.glob("*/*/*/*/index.html")}


def once_cli(site: ScratchSite, now: datetime) -> subprocess.CompletedProcess:
    """Run `publisher schedule --once --now NOW` through the real entry point."""
    return site.cli("schedule", "--once", "--now", iso(now))


def once(site: ScratchSite, now: datetime) -> subprocess.CompletedProcess:
    """Do what `schedule --once --now NOW` does, in this process (no interpreter start-up): exit code and log."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("publisher")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        code = 0 if run_once(site.root, now).ok else 1
    except SchedulerBusy as busy:
        lines.append(str(busy))
        code = 75
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return subprocess.CompletedProcess(["run_once", iso(now)], code, "", "\n".join(lines))


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


class Daemon:
    """`publisher schedule` running in the foreground, its log in a file."""

    def __init__(self, site: ScratchSite, log: Path, *args: str):
        self.site = site
        self.log_path = log
        self.log_file = open(log, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "publisher", "schedule", *args], cwd=site.root,
                                        stdout=subprocess.DEVNULL, stderr=self.log_file)

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "") -> float:
        """Poll until predicate() holds; return the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.monotonic()
            assert self.process.poll() is None, f"the scheduler exited early:\n{self.log}"
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what or predicate}:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=20)
        finally:
            self.log_file.close()


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def start(site: ScratchSite, log: Path, *args: str) -> Daemon:
        daemon = Daemon(site, log, *args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        daemon.log_file.close()


# -- timetable: pure ------------------------------------------------------------------------


def berlin(site: ScratchSite, weekday: str = "sunday", at: str = "02:30") -> None:
    site.write("publisher.toml", CONFIG.replace('timezone = "Asia/Baku"', 'timezone = "Europe/Berlin"')
               .replace("[newsletter]\n", f'[newsletter]\nweekday = "{weekday}"\ntime = "{at}"\n'))


def test_weekly_slot_on_the_autumn_change_is_one_slot_at_the_first_0230(site):
    berlin(site)
    config = site.config
    slots = timetable.slots_between(config, datetime(2026, 10, 17, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert [(s.key, iso(s.at)) for s in slots] == [
        ("weekly:2026-10-18", "2026-10-18T00:30:00+00:00"),  # CEST, UTC+2
        ("weekly:2026-10-25", "2026-10-25T00:30:00+00:00"),  # 02:30 happens twice; the first counts
        ("weekly:2026-11-01", "2026-11-01T01:30:00+00:00"),  # CET, UTC+1
    ]


def test_weekly_slot_skipped_by_the_spring_change_is_taken_an_hour_later(site):
    berlin(site)
    slot = timetable.slot_on(site.config, datetime(2026, 3, 29).date())
    assert iso(slot.at) == "2026-03-29T01:30:00+00:00"  # 03:30 CEST: 02:30 does not exist that night


def test_apscheduler_fires_twice_in_the_repeated_hour_and_our_slot_key_is_the_same(site):
    from apscheduler.triggers.cron import CronTrigger

    berlin(site)
    config = site.config
    trigger = CronTrigger(timezone=config.tz, **timetable.cron_fields(config))
    first = trigger.get_next_fire_time(None, datetime(2026, 10, 24, 22, 0, tzinfo=UTC))
    second = trigger.get_next_fire_time(first, first.astimezone(UTC) + timedelta(seconds=1))
    assert (first.astimezone(UTC).hour, second.astimezone(UTC).hour) == (0, 1)  # two fires, one hour apart
    assert timetable.latest_slot(config, first).key == timetable.latest_slot(config, second).key == "weekly:2026-10-25"


def test_backoff_doubles_and_is_capped(site):
    site.write("publisher.toml", CONFIG + "\n[schedule]\nretry_seconds = 60\nretry_max_seconds = 300\n")
    config = site.config
    assert [timetable.backoff(config, n).total_seconds() for n in range(1, 6)] == [60, 120, 240, 300, 300]


def test_future_moments_are_embargoes_expiries_and_deadlines_not_drafts(site):
    site.entry("a.md", title="Later", date="2026-11-20T09:00:00+04:00")
    site.entry("b.md", title="Draft", date="2026-11-21T09:00:00+04:00", draft="true")
    site.entry("c.md", title="Act", type="campaign", date="2026-11-01T09:00:00+04:00",
               expires="2026-12-01T00:00:00+04:00", action="{label: Sign, url: 'https://example.org/x'}")
    from publisher.render import load_rendered

    moments = timetable.future_moments(load_rendered(site.config)[0], T0)
    assert [iso(m) for m in moments] == ["2026-11-20T05:00:00+00:00", "2026-11-30T20:00:00+00:00"]


# -- --once: the controllable clock ---------------------------------------------------------


def test_embargoed_entry_is_published_at_its_date_and_not_a_second_earlier(site):
    site.entry("early.md", title="Early", date="2026-11-01T10:00:00+04:00")
    site.entry("embargoed.md", title="Embargoed", date=iso(T0 + timedelta(hours=1)))
    result = once_cli(site, T0)
    assert result.returncode == 0, result.stderr
    assert entry_paths(site) == {"early"}
    assert once(site, T0 + timedelta(minutes=59, seconds=59)).returncode == 0
    assert entry_paths(site) == {"early"}
    result = once_cli(site, T0 + timedelta(hours=1))
    assert result.returncode == 0, result.stderr
    assert entry_paths(site) == {"early", "embargoed"}
    assert "published content/embargoed.md" in result.stderr


def test_nothing_changed_means_no_rebuild(site):
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    ok(once(site, T0))
    stamp = (site.output / "index.html").stat().st_ino
    result = once(site, T0 + timedelta(minutes=5))
    assert result.returncode == 0 and "built" not in result.stderr
    assert (site.output / "index.html").stat().st_ino == stamp


def test_a_change_of_content_is_seen_even_with_the_same_mtime_and_size(site):
    path = site.entry("a.md", title="Same size AAAA", date="2026-11-01T10:00:00+04:00")
    ok(once(site, T0))
    stat = path.stat()
    path.write_text(path.read_text().replace("AAAA", "BBBB"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # an editor or rsync that keeps the mtime
    result = once(site, T0 + timedelta(seconds=30))
    assert "built" in result.stderr
    assert "Same size BBBB" in next(site.output.glob("en/*/*/a/index.html")).read_text()


def test_bad_entry_keeps_the_last_good_output_logs_every_problem_and_the_fix_is_retried(site):
    site.entry("good.md", title="Good", date="2026-11-01T10:00:00+04:00")
    ok(once(site, T0))
    before = site.tree()
    site.write("content/bad.md", "---\ntitle: Bad\ntype: nonsense\ndate: tomorrow-ish\n---\n\nText.\n")
    site.entry("embargo.md", title="Embargo", date=iso(T0 + timedelta(minutes=10)))
    result = once_cli(site, T0 + timedelta(minutes=20))
    assert result.returncode == 1
    assert "content/bad.md:3: unknown type 'nonsense'" in result.stderr
    assert "content/bad.md:4: 'date': cannot read 'tomorrow-ish' as a date" in result.stderr
    assert "Traceback" not in result.stderr
    assert site.tree() == before  # not even the embargo that came due goes out half-checked
    site.write("content/bad.md", entry_text(title="Fixed", date="2026-11-02T10:00:00+04:00"))
    result = once(site, T0 + timedelta(minutes=21))
    assert result.returncode == 0, result.stderr
    assert entry_paths(site) == {"good", "bad", "embargo"}


def test_broken_state_is_logged_once_per_change_in_a_running_runner(site, caplog):
    site.entry("good.md", title="Good", date="2026-11-01T10:00:00+04:00")
    site.write("content/bad.md", "---\ntitle: [unclosed\n---\n\nText.\n")
    runner = Runner(site.root, lambda: T0)
    try:
        with caplog.at_level(logging.ERROR, logger="publisher.schedule"):
            for minute in range(3):
                runner.reconcile(T0 + timedelta(minutes=minute))
        assert sum(r.getMessage().startswith("content/bad.md:") for r in caplog.records) == 1
        site.write("content/bad.md", "---\ntitle: [still unclosed\n---\n\nOther text.\n")
        with caplog.at_level(logging.ERROR, logger="publisher.schedule"):
            runner.reconcile(T0 + timedelta(minutes=4))
        assert sum(r.getMessage().startswith("content/bad.md:") for r in caplog.records) == 2
    finally:
        runner.close()


def test_state_lives_in_the_state_folder_never_in_output(site):
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    ok(once(site, T0))
    state = site.root / "state"
    assert {"schedule.sqlite", "schedule-jobs.sqlite", "schedule.lock"} <= {p.name for p in state.iterdir()}
    assert not [p for p in site.output.rglob("*") if "sqlite" in p.name or p.suffix == ".lock"]


def test_now_without_once_is_refused(site):
    result = site.cli("schedule", "--now", iso(T0))
    assert result.returncode == 2 and "--now needs --once" in result.stderr


def test_schedule_config_is_checked_with_lines(site):
    site.write("publisher.toml", CONFIG + "\n[schedule]\nalert_check_seconds = 600\nretry_seconds = 0\njob_store = \"::\"\n"
               "misfire_grace_seconds = 1000000000000\nretry_max_seconds = 1000000000\n")
    first = len((CONFIG + "\n[schedule]").splitlines()) + 1
    result = once_cli(site, T0)
    assert result.returncode == 1
    assert f"publisher.toml:{first}: 'schedule.alert_check_seconds' must be at most 60" in result.stderr
    assert f"publisher.toml:{first + 1}: 'schedule.retry_seconds' must be a positive whole number" in result.stderr
    assert f"publisher.toml:{first + 2}: 'schedule.job_store' must be a database URL" in result.stderr
    assert f"publisher.toml:{first + 3}: 'schedule.misfire_grace_seconds' must be at most 604800" in result.stderr
    assert f"publisher.toml:{first + 4}: 'schedule.retry_max_seconds' must be at most 86400" in result.stderr
    assert "Traceback" not in result.stderr


# -- the lock ---------------------------------------------------------------------------------


def test_a_second_scheduler_on_the_same_site_is_refused_and_a_killed_one_leaves_no_stuck_lock(site, daemons, tmp_path):
    site.write("publisher.toml", CONFIG + FAST)
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    first = daemons(site, tmp_path / "first.log")
    first.wait_for(lambda: "scheduling" in first.log, what="the first scheduler to start")
    second = once_cli(site, T0)
    assert second.returncode == 75
    assert f"process {first.process.pid} is already scheduling this site" in second.stderr
    first.stop(signal.SIGKILL)
    third = once(site, T0)
    assert third.returncode == 0, third.stderr


# -- the real scheduler ---------------------------------------------------------------------


def test_real_scheduler_publishes_an_embargo_on_its_date_trigger_and_stops_cleanly(site, daemons, tmp_path):
    # The safety check is a minute apart and file watching is off: only the date trigger can be on time.
    site.write("publisher.toml", CONFIG + "\n[schedule]\nalert_check_seconds = 60\nwatch = false\n")
    site.entry("early.md", title="Early", date="2026-11-01T10:00:00+04:00")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    site.entry("embargoed.md", title="Embargoed", date=iso(due))
    daemon = daemons(site, tmp_path / "daemon.log")
    daemon.wait_for(lambda: entry_paths(site) == {"early"}, what="the first build")
    assert datetime.now(UTC) < due, "the scheduler started too late for this test to mean anything"
    daemon.wait_for(lambda: "embargoed" in entry_paths(site), timeout=30, what="the embargoed entry")
    late = datetime.now(UTC) - due
    assert timedelta(0) <= late < timedelta(seconds=10), late  # typically 0.1 s; the bound allows a loaded CI
    jobs = sqlite3.connect(site.root / "state" / "schedule-jobs.sqlite").execute("SELECT id FROM apscheduler_jobs").fetchall()
    assert ("weekly",) in jobs
    assert daemon.stop() == 0
    assert "stopped" in daemon.log and "Traceback" not in daemon.log


def test_real_scheduler_rebuilds_when_content_changes(site, daemons, tmp_path):
    site.write("publisher.toml", CONFIG + "\n[schedule]\nalert_check_seconds = 60\n")
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    daemon = daemons(site, tmp_path / "daemon.log")
    daemon.wait_for(lambda: entry_paths(site) == {"a"}, what="the first build")
    site.entry("b.md", title="B", date="2026-11-02T10:00:00+04:00")
    daemon.wait_for(lambda: entry_paths(site) == {"a", "b"}, timeout=20, what="the watcher's rebuild")
    assert daemon.stop(signal.SIGINT) == 0


def test_restart_keeps_the_plan_in_the_sqlite_job_store(site, daemons, tmp_path):
    site.write("publisher.toml", CONFIG + FAST)
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    site.entry("later.md", title="Later", date=iso(later))
    store = site.root / "state" / "schedule-jobs.sqlite"

    def jobs() -> dict[str, float]:
        try:
            with sqlite3.connect(store) as db:
                return dict(db.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall())
        except sqlite3.OperationalError:  # the scheduler has not made its table yet
            return {}

    first = daemons(site, tmp_path / "first.log")
    first.wait_for(lambda: store.exists() and f"wake-at:{later.astimezone(UTC).isoformat()}" in jobs(), what="the plan")
    planned = jobs()
    assert first.stop() == 0
    assert jobs() == planned  # persisted as it was
    second = daemons(site, tmp_path / "second.log")
    second.wait_for(lambda: "scheduling" in second.log)
    assert jobs() == planned  # the stored weekly job was kept, not re-created (it keeps a missed run)
    assert planned[f"wake-at:{later.astimezone(UTC).isoformat()}"] == later.timestamp()
    assert second.stop() == 0


def test_sigkill_in_the_middle_of_a_build_leaves_output_whole_and_the_restart_finishes(site, daemons, tmp_path):
    site.write("publisher.toml", CONFIG + FAST)
    for index in range(150):
        site.entry(f"e{index}.md", title=f"Entry {index}", date=f"2023-0{1 + index % 9}-01", body="Words. " * 100)
    ok(once(site, T0))
    before = site.tree()
    for index in range(150):  # every page changes: a build long enough to be caught part-way
        site.entry(f"e{index}.md", title=f"Changed {index}", date=f"2023-0{1 + index % 9}-01", body="New words. " * 100)
    daemon = daemons(site, tmp_path / "killed.log")
    daemon.wait_for(lambda: any(site.root.glob(".output-staging-*/en")), what="a build in progress")
    daemon.stop(signal.SIGKILL)
    assert site.tree() == before  # the old tree, whole
    assert not any("Changed" in data.decode("utf-8", "replace") for data in site.tree().values())
    result = once(site, T0)
    assert result.returncode == 0, result.stderr
    assert "Changed" in next(site.output.glob("en/*/*/e0/index.html")).read_text()
    assert not list(site.root.glob(".output-staging-*"))


# -- delivery: alerts and the weekly issue, exactly once ---------------------------------------

SECRET = "schedule-test-secret-" + "x" * 32
ACTION = "{label: Write to the prosecutor, url: 'https://example.org/write'}"
SLOT = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # Monday 09:00 Asia/Baku: the slot of week 2026-W47


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("PUBLISHER_SECRET", SECRET)


def subscribe(site: ScratchSite, count: int, lists=("weekly", "alerts")) -> list[str]:
    from publisher.subscribers import SubscriberList

    addresses = [f"reader{n:04d}@example.net" for n in range(count)]
    with SubscriberList(site.config) as subscribers:
        for n, address in enumerate(addresses):
            subscribers.add(address, T0 - timedelta(days=30), language=("en", "az", "ru")[n % 3], lists=lists)
    return addresses


def outbox(site: ScratchSite, mailing: str) -> dict[str, bytes]:
    """Return the messages the outbox transport wrote for one mailing (a folder-name pattern), by file."""
    return {p.name: p.read_bytes() for p in (site.root / "state" / "outbox").glob(f"{mailing}/*.eml")}


def recipients(messages) -> list[str]:
    from email import message_from_bytes, policy

    return sorted(str(message_from_bytes(data, policy=policy.default)["To"]) for data in messages)


def deliveries(site: ScratchSite) -> dict[str, tuple]:
    ledger = Ledger(site.root / "state")
    try:
        return {d.key: (d.finished, d.skipped, d.attempts) for d in ledger.deliveries()}
    finally:
        ledger.close()


def test_alert_goes_out_once_as_soon_as_it_is_published(site, secret):
    site.write("publisher.toml", CONFIG + "\n[delivery]\nrate = 0\n")
    site.entry("old-alert.md", title="Old alert", type="alert", date="2026-10-01T10:00:00+04:00", action=ACTION)
    site.entry("recent.md", title="Recent alert", type="alert", date=iso(T0 - timedelta(hours=1)), action=ACTION,
               key="recent")
    due = T0 + timedelta(hours=1)
    site.entry("detained.md", title="Activists detained", type="alert", date=iso(due), action=ACTION)  # no key: by id
    readers = subscribe(site, 9)
    subscribe_weekly_only = ["weekly-only@example.net"]
    from publisher.subscribers import SubscriberList

    with SubscriberList(site.config) as subscribers:
        subscribers.add(subscribe_weekly_only[0], T0, language="en", lists=("weekly",))
    ok(once(site, T0))
    ok(once(site, due - timedelta(seconds=1)))
    assert outbox(site, "alert-detained") == {}
    result = ok(once(site, due))
    sent = outbox(site, "alert-tag-*-detained")
    assert recipients(sent.values()) == sorted(readers)  # each once; not the weekly-only reader
    detained = "alert:tag:news.example.org,2026-11-18:en/detained"  # its id: a slug may be reused, an id never
    assert f"delivered {detained}" in result.stderr
    ok(once(site, due + timedelta(minutes=1)))
    ok(once(site, due + timedelta(days=1)))
    assert outbox(site, "alert-tag-*-detained") == sent
    assert outbox(site, "alert-tag-*-old-alert") == {}  # weeks before the scheduler first ran: history, not news
    assert recipients(outbox(site, "alert-recent").values()) == sorted(readers)  # an hour before: news
    assert deliveries(site) == {detained: (True, None, 1), "alert:recent": (True, None, 1)}
    assert not any("example.net" in text for text in (result.stderr, result.stdout))  # no address in the log


def test_weekly_issue_missed_while_down_goes_out_once_on_restart(site, secret):
    site.write("publisher.toml", CONFIG + "\n[delivery]\nrate = 0\n")
    site.entry("monday.md", title="Monday news", date="2026-11-16T10:00:00+04:00")
    site.entry("sunday.md", title="Sunday news", date="2026-11-22T23:30:00+04:00")
    readers = subscribe(site, 6)
    ok(once(site, T0))  # running on Wednesday; then the machine is down over Monday 09:00
    ok(once(site, SLOT - timedelta(seconds=1)))
    assert outbox(site, "weekly-2026-W47") == {}
    result = ok(once(site, SLOT + timedelta(hours=3)))  # back up three hours late, within the grace
    sent = outbox(site, "weekly-2026-W47")
    assert recipients(sent.values()) == sorted(readers)
    assert "delivered issue:2026-W47" in result.stderr
    assert "built" not in ok(once(site, SLOT + timedelta(hours=3, seconds=1))).stderr  # rebuilt once, after sending
    for later in (timedelta(hours=5), timedelta(days=2)):
        ok(once(site, SLOT + later))
    assert outbox(site, "weekly-2026-W47") == sent
    ledger = (site.root / "state" / "issues-sent.jsonl").read_text().splitlines()
    assert len(ledger) == 1 and '"week": "2026-W47"' in ledger[0]  # frozen once (only en has entries)
    assert deliveries(site) == {"issue:2026-W47": (True, None, 1)}
    assert (site.output / "newsletter" / "en" / "2026-W47" / "issue.eml").is_file()


def test_weekly_slot_missed_beyond_the_grace_is_logged_and_its_entries_go_later(site, secret):
    site.write("publisher.toml", CONFIG + "\n[delivery]\nrate = 0\n[schedule]\nmisfire_grace_seconds = 3600\n")
    site.entry("monday.md", title="Monday news", date="2026-11-16T10:00:00+04:00")
    subscribe(site, 3)
    ok(once(site, T0))
    result = ok(once(site, SLOT + timedelta(hours=2)))
    assert outbox(site, "weekly-2026-W47") == {}
    assert "issue 2026-W47 missed its slot by 2:00:00" in result.stderr
    assert deliveries(site)["issue:2026-W47"][:2] == (True, "missed its slot by 2:00:00 (over misfire_grace_seconds); "
                                                              "its entries go with a later issue")
    site.entry("next.md", title="Next week", date="2026-11-25T10:00:00+04:00")
    ok(once(site, SLOT + timedelta(days=7)))  # the next slot sends 2026-W48, and the late entries reach readers later
    assert len(outbox(site, "weekly-2026-W48")) == 3


def test_berlin_autumn_change_weekly_slot_at_0230_goes_out_once_with_the_right_weeks(site, secret):
    berlin(site)  # Sunday 02:30, Europe/Berlin: on 2026-10-25 the clocks go from 03:00 CEST back to 02:00 CET
    site.write("publisher.toml", site.root.joinpath("publisher.toml").read_text() + "\n[delivery]\nrate = 0\n")
    site.entry("sunday-night.md", title="Sunday night", date="2026-10-18T23:30:00+02:00")  # week 42, CEST
    site.entry("monday-early.md", title="Monday early", date="2026-10-19T00:30:00+02:00")  # week 43
    site.entry("long-sunday.md", title="Long Sunday", date="2026-10-25T23:30:00+01:00")  # week 43's 25-hour Sunday
    site.entry("next-monday.md", title="Next Monday", date="2026-10-26T00:15:00+01:00")  # week 44
    subscribe(site, 3)
    ok(once(site, datetime(2026, 10, 20, tzinfo=UTC)))
    ok(once(site, datetime(2026, 10, 25, 0, 29, 59, tzinfo=UTC)))  # 02:29:59 CEST
    assert outbox(site, "weekly-2026-W42") == {}
    ok(once(site, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)))  # the first 02:30 (CEST)
    assert len(outbox(site, "weekly-2026-W42")) == 3
    result = ok(once(site, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)))  # the second 02:30 (CET): APScheduler fires again
    assert "delivered" not in result.stderr
    ok(once(site, datetime(2026, 11, 1, 1, 29, 59, tzinfo=UTC)))  # 02:29:59 CET a week later
    assert outbox(site, "weekly-2026-W43") == {}
    ok(once(site, datetime(2026, 11, 1, 1, 30, tzinfo=UTC)))
    assert len(outbox(site, "weekly-2026-W43")) == 3
    weeks = [line for line in (site.root / "state" / "issues-sent.jsonl").read_text().splitlines()]
    assert len(weeks) == 2
    assert "en/sunday-night" in weeks[0] and "monday-early" not in weeks[0]
    assert "en/monday-early" in weeks[1] and "en/long-sunday" in weeks[1] and "next-monday" not in weeks[1]
    assert sorted(deliveries(site)) == ["issue:2026-W42", "issue:2026-W43"]


def test_smtp_outage_is_retried_with_backoff_and_each_reader_gets_one_message(site, secret):
    from smtp_sink import Sink, free_port

    port = free_port()  # nothing listens here yet: the relay is down
    site.write("publisher.toml", CONFIG + f"""
[schedule]
retry_seconds = 60
retry_max_seconds = 600

[delivery]
rate = 0
retries = 1
backoff = 0.01

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5
""")
    due = T0 + timedelta(hours=1)
    site.entry("detained.md", title="Activists detained", type="alert", date=iso(due), action=ACTION, key="detained")
    readers = subscribe(site, 5)
    ok(once(site, T0))
    failed = once(site, due)
    assert failed.returncode == 1 and "alert:detained not delivered (attempt 1)" in failed.stderr
    assert "retrying at 2026-11-18T17:01:00+04:00" in failed.stderr
    waiting = ok(once(site, due + timedelta(seconds=59)))  # before the backoff: not tried again
    assert "alert:detained" not in waiting.stderr
    again = once(site, due + timedelta(seconds=60))
    assert again.returncode == 1 and "(attempt 2)" in again.stderr and "retrying at 2026-11-18T17:03:00+04:00" in again.stderr
    from aiosmtpd.controller import Controller
    from smtp_sink import _Handler

    sink = Sink(port=port)  # the relay comes back, on the same port
    sink.controller = Controller(_Handler(sink), hostname="127.0.0.1", port=port)
    sink.controller.start()
    try:
        result = ok(once(site, due + timedelta(seconds=180)))
        assert "delivered alert:detained" in result.stderr
        ok(once(site, due + timedelta(hours=2)))
        assert sorted(sink.recipients().elements()) == sorted(readers)  # each exactly once
    finally:
        sink.stop()
    assert deliveries(site) == {"alert:detained": (True, None, 3)}


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_in_the_middle_of_an_alert_delivery_then_restart_delivers_the_rest_once(site, secret, daemons, tmp_path,
                                                                                       stop):
    """SIGKILL abandons the delivery at any point; SIGTERM pauses it between two messages and exits 0."""
    from publisher.delivery import ledger_counts

    site.write("publisher.toml", CONFIG + FAST + "\n[delivery]\nrate = 40\n")
    readers = subscribe(site, 120)
    ok(once(site, datetime.now(UTC)))  # the site was scheduled before the alert was written
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    site.entry("detained.md", title="Activists detained", type="alert", date=iso(due), action=ACTION, key="detained")
    first = daemons(site, tmp_path / "first.log")
    first.wait_for(lambda: len(outbox(site, "alert-detained")) >= 10, timeout=30, what="sending under way")
    code = first.stop(stop)
    assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL), first.log
    assert 10 <= len(outbox(site, "alert-detained")) < 120  # stopped mid-delivery
    second = daemons(site, tmp_path / "second.log")
    second.wait_for(lambda: deliveries(site).get("alert:detained", (False,))[0], timeout=30, what="the rest")
    assert second.stop() == 0
    assert recipients(outbox(site, "alert-detained").values()) == sorted(readers)
    counts = ledger_counts(site.config, "alert/detained")
    assert counts == {"sent": 120}, counts
    assert deliveries(site)["alert:detained"] == (True, None, 2)  # started, killed, resumed


def test_sigkill_in_the_middle_of_the_weekly_delivery_then_the_next_run_finishes_it(site, secret):
    from publisher.delivery import ledger_counts

    site.write("publisher.toml", CONFIG + "\n[delivery]\nrate = 50\n")
    site.entry("monday.md", title="Monday news", date="2026-11-16T10:00:00+04:00")
    readers = subscribe(site, 120)
    ok(once(site, T0))
    process = subprocess.Popen([sys.executable, "-m", "publisher", "schedule", "--once", "--now", iso(SLOT)],
                               cwd=site.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(outbox(site, "weekly-2026-W47")) < 10 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    assert 10 <= len(outbox(site, "weekly-2026-W47")) < 120
    assert deliveries(site)["issue:2026-W47"][0] is False
    ok(once(site, SLOT + timedelta(minutes=1)))
    assert recipients(outbox(site, "weekly-2026-W47").values()) == sorted(readers)
    assert ledger_counts(site.config, "weekly/2026-W47") == {"sent": 120}
    assert len((site.root / "state" / "issues-sent.jsonl").read_text().splitlines()) == 1
    assert deliveries(site)["issue:2026-W47"] == (True, None, 2)


def test_a_failing_job_is_logged_and_the_next_wake_up_recovers(site, caplog):
    site.write("publisher.toml", CONFIG.replace('default_language = "en"', 'default_language = "en"\noutput_dir = "blocked/output"'))
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    site.write("blocked", "a file where the output's parent folder should be")
    runner = Runner(site.root, lambda: T0)
    try:
        with caplog.at_level(logging.ERROR, logger="publisher.schedule"):
            assert runner.tick("test") is None  # an OSError deep in the build: logged, not raised
            assert runner.tick("test") is None
        assert "unexpected error while reconciling (test)" in caplog.text
        assert caplog.text.count("Traceback") == 1 and "still failing (test)" in caplog.text  # not a traceback a check
        (site.root / "blocked").unlink()
        outcome = runner.tick("test again")
        assert outcome is not None and outcome.built and outcome.ok
        assert (site.root / "blocked" / "output" / "index.html").is_file()
    finally:
        runner.close()


def test_a_missing_secret_is_reported_once_with_its_fix_and_the_alert_goes_when_it_is_set(site, monkeypatch):
    monkeypatch.delenv("PUBLISHER_SECRET", raising=False)
    site.write("publisher.toml", CONFIG + "\n[delivery]\nrate = 0\n")
    due = T0 + timedelta(hours=1)
    site.entry("detained.md", title="Activists detained", type="alert", date=iso(due), action=ACTION, key="detained")
    readers = subscribe(site, 3)
    ok(once(site, T0))
    failed = once(site, due)
    assert failed.returncode == 1
    assert "the environment variable PUBLISHER_SECRET is not set" in failed.stderr
    assert "alert:detained not delivered; retrying at 2026-11-18T17:01:00+04:00" in failed.stderr
    monkeypatch.setenv("PUBLISHER_SECRET", SECRET)
    ok(once(site, due + timedelta(minutes=1)))
    assert recipients(outbox(site, "alert-detained").values()) == sorted(readers)


def test_job_store_setting_is_read_from_the_site_folder_and_never_inside_output(site):
    site.write("publisher.toml", CONFIG + '\n[schedule]\njob_store = "sqlite:///output/jobs.sqlite"\n')
    result = once_cli(site, T0)
    assert result.returncode == 1
    assert "'schedule.job_store' must be outside output/, or the scheduler's state would be published" in result.stderr
    site.write("publisher.toml", CONFIG + '\n[schedule]\njob_store = "sqlite:///private/jobs.sqlite"\n')
    (site.root / "private").mkdir()
    ok(once(site, T0))
    assert (site.root / "private" / "jobs.sqlite").is_file()  # relative to the site, whatever the working folder
    assert not (site.root / "state" / "schedule-jobs.sqlite").exists()


def test_real_scheduler_sends_the_slot_missed_while_down_once_and_a_restart_sends_nothing(site, secret, daemons, tmp_path):
    from publisher.issues import week_of

    baku = ZoneInfo("Asia/Baku")
    slot = (datetime.now(baku) - timedelta(hours=2)).replace(second=0, microsecond=0)  # passed while "down"
    weekly = f'[newsletter]\nweekday = "{slot.strftime("%A").lower()}"\ntime = "{slot:%H:%M}"\n'
    site.write("publisher.toml", CONFIG.replace("[newsletter]\n", weekly) + FAST + "\n[delivery]\nrate = 0\n")
    site.entry("last-week.md", title="Last week", date=iso(slot - timedelta(days=7)))
    week = week_of(slot - timedelta(days=7), site.config)
    readers = subscribe(site, 6)
    ok(once(site, slot - timedelta(hours=1)))  # the scheduler ran before the slot; then the machine went down
    first = daemons(site, tmp_path / "first.log")
    first.wait_for(lambda: deliveries(site).get(f"issue:{week}", (False,))[0], what="the missed issue")
    assert first.stop() == 0
    sent = outbox(site, f"weekly-{week}")
    assert recipients(sent.values()) == sorted(readers)
    second = daemons(site, tmp_path / "second.log", "--verbose")
    second.wait_for(lambda: second.log.count("woken: periodic check") >= 2, what="two full checks")
    assert second.stop() == 0
    assert "delivered" not in second.log
    assert outbox(site, f"weekly-{week}") == sent
    assert deliveries(site)[f"issue:{week}"] == (True, None, 1)


def test_berlin_spring_change_weekly_slot_at_a_time_that_does_not_exist_goes_out_an_hour_later(site, secret):
    berlin(site)  # on 2026-03-29 the clocks jump from 02:00 to 03:00: Sunday 02:30 does not happen
    site.write("publisher.toml", site.root.joinpath("publisher.toml").read_text() + "\n[delivery]\nrate = 0\n")
    site.entry("march.md", title="March news", date="2026-03-18T10:00:00+01:00")  # week 12
    subscribe(site, 2)
    ok(once(site, datetime(2026, 3, 20, tzinfo=UTC)))
    ok(once(site, datetime(2026, 3, 29, 1, 29, 59, tzinfo=UTC)))  # 02:29:59 CET, a second before the jump
    assert outbox(site, "weekly-2026-W12") == {}
    ok(once(site, datetime(2026, 3, 29, 1, 30, tzinfo=UTC)))  # 03:30 CEST
    assert len(outbox(site, "weekly-2026-W12")) == 2


def test_an_unreadable_job_store_is_set_aside_and_an_unreadable_ledger_is_reported_not_replaced(site):
    site.entry("a.md", title="A", date="2026-11-01T10:00:00+04:00")
    state = site.root / "state"
    site.write("state/schedule-jobs.sqlite", "not a database, whatever happened to it")
    result = ok(once(site, T0))  # the job store only says when to look: a fresh one loses nothing
    assert "set aside as schedule-jobs.sqlite.unreadable and started afresh" in result.stderr
    assert entry_paths(site) == {"a"}
    site.write("state/schedule.sqlite", "not a database either")
    result = once_cli(site, T0)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{state / 'schedule.sqlite'}:1: the scheduler's ledger cannot be read" in result.stderr
    assert (state / "schedule.sqlite").read_text() == "not a database either"
