"""What the scheduler does on each wake-up: publish what is due, deliver what is owed, once.

Every wake-up, whatever caused it (an embargo's date trigger, the weekly cron trigger, a
file change, the periodic safety check, `--once`), runs the same idempotent
`Runner.reconcile(now)`: rebuild if what readers may see changed, then deliver what the
ledgers say is owed. The ledgers (ours in state/schedule.sqlite, the sent issues in
state/issues-sent.jsonl and delivery's per-recipient send ledger) decide what happens; when
to wake up is publisher.schedule's business (APScheduler). A wake-up twice, late, or after
a crash does no harm.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from publisher import build_process, timetable
from publisher.config import Config, load_config
from publisher.content import Entry
from publisher.delivery import send
from publisher.issues import due_issues, issues_of, read_ledger, record_sent
from publisher.problems import EditorError, Problem
from publisher.render import load_rendered
from publisher.schedule_ledger import Ledger
from publisher.sources import SourceHasher
from publisher.website import Site

log = logging.getLogger("publisher.schedule")

Clock = Callable[[], datetime]
# Given the config, the future moments something is due (soonest first) and now, arrange wake-ups.
Planner = Callable[[Config, list[datetime], datetime], None]


@dataclass
class Outcome:
    """What one reconciliation did."""

    built: bool = False
    published: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not any(not p.warning for p in self.problems)


class Runner:
    """Reconcile one site with the clock: build when needed, deliver what is owed, plan wake-ups."""

    def __init__(self, root: Path, clock: Clock, planner: Planner | None = None):
        self.root = root.resolve()
        self.clock = clock
        self.planner = planner
        self.config = load_config(self.root)  # a broken config at start stops here, with its problems
        self.ledger = Ledger(self.config.path("state"))
        self.hasher = SourceHasher()
        self.sources = ""  # the fingerprint of the sources as last loaded
        self.entries: tuple[Entry, ...] | None = None  # as loaded from those sources
        self.mutex = threading.Lock()  # wake-ups from the watcher and from jobs run one at a time
        self.reported: str | None = None  # the broken state already logged, so it is logged once
        self.stopping = False
        self.crashed: str | None = None  # the last unexpected error, so its traceback is logged once
        # Before the first load, whose process pool would start the fork server without the
        # rendering stack, and from this thread, which lives as long as the scheduler.
        build_process.prepare()

    def close(self) -> None:
        self.ledger.close()

    def is_stopping(self) -> bool:
        return self.stopping

    def local(self, moment: datetime) -> str:
        """Show a moment in the site's time zone, as editors think of it."""
        return moment.astimezone(self.config.tz).isoformat(timespec="seconds")

    def tick(self, reason: str) -> Outcome | None:
        """Reconcile at the clock's time; log, never raise: a job's failure must not stop the scheduler."""
        if self.stopping:
            return None  # shutting down: a queued wake-up is dropped; the next start reconciles anyway
        try:
            now = self.clock()
            log.debug("woken: %s at %s", reason, now.isoformat())
            outcome = self.reconcile(now)
        except Exception as exc:
            if repr(exc) == self.crashed:  # the traceback was logged already: one line per check is enough
                log.error("still failing (%s): %r", reason, exc)
            else:
                log.exception("unexpected error while reconciling (%s); the next wake-up tries again", reason)
            self.crashed = repr(exc)
            return None
        self.crashed = None
        return outcome

    def reconcile(self, now: datetime) -> Outcome:
        """Bring output/ and deliveries up to date with `now`."""
        with self.mutex:
            outcome = Outcome()
            since = self.ledger.since(now)
            entries = self.load(outcome)
            if entries is None:
                self.deliver(outcome, now, since, None)  # only what is frozen already
                return outcome
            slot = timetable.latest_slot(self.config, now)
            state = timetable.publication_state(self.sources, entries, now, slot)
            if state != self.ledger.get("built") and not self.rebuild(outcome, entries, now, state):
                self.deliver(outcome, now, since, None)
                return outcome
            self.deliver(outcome, now, since, entries)
            if any(key.startswith("issue:") for key in outcome.delivered):
                # The sent-issues ledger (a source) changed: show those issues as sent right away.
                self.sources = self.hasher.fingerprint(self.config)
                self.rebuild(outcome, entries, now, timetable.publication_state(self.sources, entries, now, slot))
            self.plan(entries, now)
            return outcome

    def deliver(self, outcome: Outcome, now: datetime, since: datetime, entries: tuple[Entry, ...] | None) -> None:
        """Resume unfinished deliveries, then (with entries that load) start the newly owed ones."""
        if not self.config.schedule.deliver:
            return
        try:
            self.finish_deliveries(outcome, now, entries)
            if entries is not None:
                self.deliver_alerts(outcome, entries, now, since)
                self.deliver_issues(outcome, entries, now, since)
        except EditorError as error:  # an unreadable sent-issues ledger: say where, touch nothing
            self.report(error.problems, outcome, "nothing more is delivered until they are fixed")

    # -- reading and building ------------------------------------------------------------

    def load(self, outcome: Outcome) -> tuple[Entry, ...] | None:
        """Reload config and entries (unless no source changed); on editor errors log them once, return None."""
        try:
            config = load_config(self.root)
            sources = self.hasher.fingerprint(config)
            if sources != self.sources or self.entries is None:
                self.entries = None
                # Through the render cache, so the build that follows reads every entry from it.
                self.entries = load_rendered(config)[0]
            self.config, self.sources = config, sources
        except EditorError as error:
            self.sources = ""
            self.report(error.problems, outcome)
            return None
        return self.entries

    def report(self, problems: Sequence[Problem], outcome: Outcome,
               consequence: str = "not published: the last good output stays until they are fixed") -> None:
        """Log every problem as path:line: message, once per broken state of the sources."""
        outcome.problems.extend(problems)
        state = self.hasher.fingerprint(self.config) + "\n".join(map(str, problems))
        if state == self.reported:
            return
        self.reported = state
        for problem in problems:
            (log.warning if problem.warning else log.error)("%s", problem)
        log.error("%d problem(s); %s", len(problems), consequence)

    def rebuild(self, outcome: Outcome, entries: tuple[Entry, ...], now: datetime, state: str) -> bool:
        """Build output/ as of `now`; on editor errors keep the old output and return False."""
        try:
            result = build_process.build_apart(self.root, now)  # in a process of its own, which may fork: see build_process
        except EditorError as error:
            self.report(error.problems, outcome)
            return False
        self.reported = None
        outcome.built = True
        first = self.ledger.get("built") is None
        self.ledger.put("built", state)
        outcome.published = self.ledger.record_published((e for e in entries if e.is_published(now)), now)
        if first:
            log.info("first run on this site: %d entries were already published", len(outcome.published))
        else:
            for path in outcome.published:
                log.info("published %s", path)
        log.info("built %d files from %d published entries", result.files, result.entries)
        return True

    # -- delivering ----------------------------------------------------------------------

    def finish_deliveries(self, outcome: Outcome, now: datetime, entries: tuple[Entry, ...] | None) -> None:
        """Resume deliveries that started but did not finish (a crash, an outage), when their retry is due."""
        for delivery in self.ledger.unfinished():
            if self.stopping or (delivery.retry_at and delivery.retry_at > now):
                continue
            kind, target = delivery.kind, delivery.target
            if kind == "issue":
                if entries is None and not week_recorded(self.config, target):
                    continue  # not frozen yet and its issues cannot be read now: wait for a fix
                send = partial(send_week, self.config, target, entries, now, self.is_stopping)
            else:
                if entries is None:
                    continue  # finding an alert needs the content; wait for a fix
                send = partial(send_alert, self.config, target, now, self.is_stopping)
            self.attempt(outcome, delivery.key, kind, target, now, send)

    def deliver_alerts(self, outcome: Outcome, entries: tuple[Entry, ...], now: datetime, since: datetime) -> None:
        """Deliver each new alert once, as soon as it is out.

        New means published since the scheduler first ran on the site, or within the misfire
        grace before that; older alerts are history, not news. Delivery's own ledger keeps
        anyone who already got one (from `publisher send`) from getting it again.
        """
        grace = timedelta(seconds=self.config.schedule.misfire_grace_seconds)
        for entry in entries:
            if entry.type != "alert" or not entry.is_published(now) or (entry.date < since and now - entry.date > grace):
                continue
            # One delivery per alert and its translations; the id, unlike the slug, is never reused.
            key = f"alert:{entry.translation_key}"
            target = entry.key or entry.slug  # what `publisher send` finds an alert (and its translations) by
            if self.ledger.delivery(key) is not None:
                continue  # delivered, skipped, or retrying on its own schedule in finish_deliveries
            if entry.retracted or not entry.action_open(now):
                reason = "retracted" if entry.retracted else "its action closed before it could be sent"
                self.ledger.skip(key, "alert", target, now, reason)
                log.warning("alert %s not sent: %s", entry.path, reason)
                continue
            self.attempt(outcome, key, "alert", target, now,
                         partial(send_alert, self.config, target, now, self.is_stopping))

    def deliver_issues(self, outcome: Outcome, entries: tuple[Entry, ...], now: datetime, since: datetime) -> None:
        """Deliver every weekly issue whose slot has come, within the misfire grace; note the ones missed."""
        grace = timedelta(seconds=self.config.schedule.misfire_grace_seconds)
        site = Site.at(self.config, entries, now)
        for week in sorted({issue.week for issue in due_issues(site, grace)}):
            key = f"issue:{week}"
            if self.ledger.delivery(key) is None:
                self.attempt(outcome, key, "issue", week, now,
                             partial(send_week, self.config, week, entries, now, self.is_stopping))
        for issue in issues_of(site):
            key = f"issue:{issue.week}"
            late = now - issue.publishes
            if not issue.sent and late > grace and issue.publishes >= since and self.ledger.delivery(key) is None:
                reason = f"missed its slot by {late} (over misfire_grace_seconds); its entries go with a later issue"
                self.ledger.skip(key, "issue", issue.week, now, reason)
                log.warning("issue %s %s", issue.week, reason)

    def attempt(self, outcome: Outcome, key: str, kind: str, target: str, now: datetime,
                send: Callable[[], str]) -> None:
        """Record a delivery as started, run it, and record its end or when to retry."""
        delivery = self.ledger.start(key, kind, target, now)
        try:
            summary = send()
        except Stopping as pause:
            log.info("%s paused for shutdown (%s); the next start resumes it", key, pause)
            outcome.failures.append(key)
        except EditorError as error:  # a missing secret or password: the operator must act
            retry = now + timetable.backoff(self.config, delivery.attempts)
            self.ledger.fail(key, retry, str(error))
            self.report(error.problems, outcome, f"{key} not delivered; retrying at {self.local(retry)}")
            outcome.failures.append(key)
        except Exception as exc:  # an outage, a relay refusing us: retried with backoff, never fatal
            retry = now + timetable.backoff(self.config, delivery.attempts)
            self.ledger.fail(key, retry, f"{type(exc).__name__}: {exc}")
            log.error("%s not delivered (attempt %d): %s; retrying at %s", key, delivery.attempts, exc, self.local(retry))
            outcome.failures.append(key)
        else:
            self.ledger.finish(key, now)
            outcome.delivered.append(key)
            log.info("delivered %s: %s", key, summary)

    # -- planning wake-ups ---------------------------------------------------------------

    def plan(self, entries: tuple[Entry, ...], now: datetime) -> None:
        """Hand the planner every future moment something is due: embargoes, expiries, retries."""
        if self.planner is None or self.stopping:
            return
        moments = timetable.future_moments(entries, now)
        moments += [d.retry_at.astimezone(timezone.utc) for d in self.ledger.unfinished() if d.retry_at and d.retry_at > now]
        self.planner(self.config, sorted(set(moments)), now)


# -- sending through delivery ---------------------------------------------------------------


class IncompleteDelivery(Exception):
    """Some recipients were deferred (the relay refused for now); the rest are sent, they are retried."""


class Stopping(Exception):
    """The scheduler is shutting down: a delivery pauses between two messages and resumes on the next start."""


StopCheck = Callable[[], bool]


def send_week(config: Config, week: str, entries: tuple[Entry, ...] | None, now: datetime,
              stopping: StopCheck = lambda: False) -> str:
    """Freeze the issues of one week in the sent-issues ledger, then send them; safe to repeat."""
    if entries is not None:
        # Record before sending: from here on the issues never change, so a resumed run
        # sends the remaining subscribers exactly what the first ones got.
        site = Site.at(config, entries, now)
        for issue in issues_of(site):
            if issue.week == week and not issue.sent:
                record_sent(config, issue, now)
    return _sent(config, week, now, stopping)


def send_alert(config: Config, target: str, now: datetime, stopping: StopCheck = lambda: False) -> str:
    """Send an alert (and its translations) to the alerts list; safe to repeat."""
    return _sent(config, target, now, stopping)


def week_recorded(config: Config, week: str) -> bool:
    """Tell whether some issue of a week is in the sent-issues ledger (frozen, so it can be sent)."""
    return any(record.week == week for record in read_ledger(config))


def _sent(config: Config, target: str, now: datetime, stopping: StopCheck) -> str:
    def progress(done: int, total: int) -> None:
        if stopping() and done < total:
            raise Stopping(f"{done} of {total} handled")

    report = send(config, target, now, progress=progress)
    if not report.complete:
        raise IncompleteDelivery(report.summary())
    return report.summary()
