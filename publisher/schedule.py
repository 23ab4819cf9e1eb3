"""`publisher schedule`: publish embargoed entries on time, deliver alerts and the weekly issue, once.

Every wake-up, whatever caused it (an embargo's date trigger, the weekly cron trigger, a
file change, the periodic safety check, `--once`), runs the same idempotent `reconcile(now)`:
rebuild if what readers may see changed, then deliver what the ledgers say is owed. So the
ledgers (ours in state/schedule.sqlite, the sent issues in state/issues-sent.jsonl and the
per-recipient send ledger of delivery) decide what happens; APScheduler's job store only
decides when to look. A wake-up twice, late, or after a crash does no harm.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from publisher import timetable
from publisher.build import build
from publisher.config import CONFIG_NAME, Config, load_config
from publisher.content import Entry, load_entries
from publisher.delivery import send
from publisher.issues import due_issues, issues_of, read_ledger, record_sent
from publisher.locking import site_lock
from publisher.problems import EditorError, Problem
from publisher.schedule_ledger import Ledger
from publisher.sources import SourceHasher, is_source
from publisher.website import Site

log = logging.getLogger("publisher.schedule")

JOBS_NAME = "schedule-jobs.sqlite"
WAKE_PREFIX = "wake-at:"
PLAN_LIMIT = 500  # future wake-ups kept in the job store; the periodic check covers any beyond

Clock = Callable[[], datetime]

# APScheduler stores a job's function by its textual reference ("module:name"), so a job
# read back from SQLite cannot carry the runner; it finds the runner of its site here.
_RUNNERS: dict[str, "Runner"] = {}


def wake(root: str, reason: str) -> None:
    """Run one reconciliation of the site at `root` (the target of every stored job)."""
    runner = _RUNNERS.get(root)
    if runner is None:
        log.warning("woken for %s (%s) but no scheduler of that site runs here", root, reason)
        return
    runner.tick(reason)


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

    def __init__(self, root: Path, clock: Clock, scheduler: SiteScheduler | None = None):
        self.root = root.resolve()
        self.clock = clock
        self.scheduler = scheduler
        self.config = load_config(self.root)  # a broken config at start stops here, with its problems
        self.ledger = Ledger(self.config.path("state"))
        self.hasher = SourceHasher()
        self.sources = ""  # the fingerprint of the sources as last loaded
        self.entries: tuple[Entry, ...] | None = None  # as loaded from those sources
        self.mutex = threading.Lock()  # wake-ups from the watcher and from jobs run one at a time
        self.reported: str | None = None  # the broken state already logged, so it is logged once
        self.planned: set[str] | None = None
        self.stopping = False
        self.installed: tuple | None = None  # the settings the weekly and check jobs were made from

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
            return self.reconcile(now)
        except Exception:
            log.exception("unexpected error while reconciling (%s); the next wake-up tries again", reason)
            return None

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
                self.entries = load_entries(config)
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
            result = build(self.root, now)
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
        """Keep one date-triggered job per future moment (embargo, expiry, retry) in the job store."""
        if self.scheduler is None or self.stopping:
            return
        if jobs_settings(self.config) != self.installed:
            install_jobs(self.scheduler, self.config, self.root, now)
            self.installed = jobs_settings(self.config)
        moments = timetable.future_moments(entries, now)
        moments += [d.retry_at.astimezone(timezone.utc) for d in self.ledger.unfinished() if d.retry_at and d.retry_at > now]
        wanted = {f"{WAKE_PREFIX}{m.isoformat()}": m for m in sorted(set(moments))[:PLAN_LIMIT]}
        if self.planned is None:
            self.planned = {job.id for job in self.scheduler.get_jobs("default") if job.id.startswith(WAKE_PREFIX)}
        for job_id in self.planned - set(wanted):
            try:
                self.scheduler.remove_job(job_id, "default")
            except JobLookupError:
                pass  # a date job that fired is gone from the store already
        for job_id, moment in wanted.items():
            if job_id not in self.planned:
                self.scheduler.add_job(
                    "publisher.schedule:wake", "date", run_date=moment, id=job_id, name=job_id,
                    args=[str(self.root), job_id],
                    jobstore="default", misfire_grace_time=None, coalesce=True, replace_existing=True,
                )
        if wanted.keys() != self.planned:
            log.debug("planned %d wake-ups; next %s", len(wanted), next(iter(wanted), "none"))
        self.planned = set(wanted)


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


# -- the APScheduler side ------------------------------------------------------------------


class SiteScheduler(BackgroundScheduler):
    """APScheduler's BackgroundScheduler, inert once shut down."""

    def _process_jobs(self):
        # APScheduler 3 wakes its thread once more after shutdown() and would then submit due
        # jobs to the stopped executor and drop fired date jobs from the store, unrun.
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()


def make_scheduler(config: Config, root: Path) -> SiteScheduler:
    """Return a scheduler on the site's persistent job store (not started)."""
    config.path("state").mkdir(parents=True, exist_ok=True)
    return SiteScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=job_store_url(config)), "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(1)},  # one wake-up at a time; the rest wait their turn
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone.utc,
    )


def job_store_url(config: Config) -> str:
    """Return the job store's URL; a relative SQLite path is taken from the site folder, not the working one."""
    if not config.schedule.job_store:
        return f"sqlite:///{config.path('state') / JOBS_NAME}"
    url = make_url(config.schedule.job_store)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(config.root / url.database))  # an absolute path stays as it is
    return url.render_as_string(hide_password=False)


def jobs_settings(config: Config) -> tuple:
    """Return what the weekly and check jobs depend on, to re-make them when publisher.toml changes it."""
    n, s = config.newsletter, config.schedule
    return (n.weekday, n.time, config.timezone, s.misfire_grace_seconds, s.alert_check_seconds)


def install_jobs(scheduler: SiteScheduler, config: Config, root: Path, now: datetime) -> None:
    """Add the weekly cron job (kept across restarts unless its time changed) and the safety check."""
    weekly = CronTrigger(timezone=config.tz, **timetable.cron_fields(config))
    stored = scheduler.get_job("weekly", "default")
    grace = config.schedule.misfire_grace_seconds
    if stored is None or str(stored.trigger) != str(weekly) or str(stored.trigger.timezone) != str(weekly.timezone) \
            or stored.misfire_grace_time != grace or stored.args != (str(root), "weekly issue"):
        # Replacing moves next_run_time to the next slot: only do it when the slot itself changed,
        # so a slot missed while the machine was down is still run (coalesced) on restart.
        scheduler.add_job("publisher.schedule:wake", weekly, id="weekly", name="weekly issue",
                          args=[str(root), "weekly issue"],
                          jobstore="default", misfire_grace_time=grace, coalesce=True, replace_existing=True)
    scheduler.add_job("publisher.schedule:wake", "interval", seconds=config.schedule.alert_check_seconds,
                      id="check", name="periodic check", args=[str(root), "periodic check"], jobstore="memory",
                      next_run_time=now, replace_existing=True)


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr with timestamps (systemd and containers collect it); quiet APScheduler's routine."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("publisher").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # every raw event, even filtered out


def start_paused(config: Config, root: Path) -> SiteScheduler:
    """Start a scheduler on the job store, paused; set an unreadable default store aside and begin a new one.

    The job store only says when to wake up (the ledger says what is owed), so a fresh one
    loses nothing: the first check plans every wake-up again.
    """
    scheduler = make_scheduler(config, root)
    try:
        scheduler.start(paused=True)
        return scheduler
    except SQLAlchemyError as exc:
        store = config.path("state") / JOBS_NAME
        if config.schedule.job_store or not store.exists():
            raise EditorError([Problem(CONFIG_NAME, 1, f"cannot open the job store {job_store_url(config)!r}: "
                                                       f"{getattr(exc, 'orig', exc)}; check [schedule] job_store")])
        aside = store.with_name(f"{store.name}.unreadable")
        log.warning("the job store %s cannot be read (%s); set aside as %s and started afresh",
                    store, getattr(exc, "orig", exc), aside.name)
        os.replace(store, aside)
    scheduler = make_scheduler(config, root)
    scheduler.start(paused=True)
    return scheduler


def run_once(root: Path, now: datetime) -> Outcome:
    """Do whatever is due at `now`, under the site lock, and return; for cron and tests."""
    config = load_config(root)
    with site_lock(config.path("state")):
        scheduler = start_paused(config, root.resolve())
        runner = Runner(root, lambda: now, scheduler)
        try:
            return runner.reconcile(now)
        finally:
            scheduler.shutdown(wait=False)
            runner.close()


def serve(root: Path, clock: Clock, stop: threading.Event | None = None) -> int:
    """Run in the foreground until SIGTERM or SIGINT (or `stop`); return the exit code."""
    config = load_config(root)
    stop = stop or threading.Event()
    with site_lock(config.path("state")):
        handle_signals(stop)
        scheduler = start_paused(config, root.resolve())
        runner = Runner(root, clock, scheduler)
        _RUNNERS[str(runner.root)] = runner
        try:
            install_jobs(scheduler, runner.config, runner.root, clock())
            runner.installed = jobs_settings(runner.config)
            scheduler.resume()
            watchers = start_watcher(runner, stop) if runner.config.schedule.watch else []
            log.info("scheduling %s: weekly issue %s %s %s; checking every %d s", runner.root,
                     config.newsletter.weekday, config.newsletter.time, config.timezone,
                     config.schedule.alert_check_seconds)
            stop.wait()
            log.info("stopping: letting the current job finish (signal again to abandon it; it is safe to)")
            runner.stopping = True
            with runner.mutex:
                # Shut down only once no job runs: APScheduler holds its job store lock while it
                # waits for running jobs, and a running job plans its wake-ups through that store.
                scheduler.shutdown(wait=True)
            for watcher in watchers:
                watcher.join(timeout=5)
        finally:
            _RUNNERS.pop(str(runner.root), None)
            if scheduler.running:
                scheduler.shutdown(wait=False)
            runner.close()
    log.info("stopped")
    return 0


def handle_signals(stop: threading.Event) -> None:
    """Stop cleanly on the first SIGTERM/SIGINT; on a second, exit at once.

    Exiting mid-job is safe: output/ is swapped in atomically and every delivery resumes
    from its ledger, which is what the SIGKILL tests prove.
    """

    def on_signal(number: int, frame) -> None:
        if stop.is_set():
            # Not through logging: its lock may be held by the thread this signal interrupted.
            os.write(2, f"second {signal.Signals(number).name}: abandoning the current job\n".encode())
            os._exit(128 + number)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)


def start_watcher(runner: Runner, stop: threading.Event) -> list[threading.Thread]:
    """Wake the runner as soon as a source file changes (inotify through watchfiles).

    Content and templates are watched recursively; the site folder only for its own files
    (publisher.toml, the redaction list), so a build writing output/ makes no events at all.
    """
    import watchfiles

    config = runner.config

    class SourceFilter(watchfiles.DefaultFilter):
        def __call__(self, change, path: str) -> bool:
            return super().__call__(change, path) and is_source(config, Path(path))

    def watch(paths: list[Path], recursive: bool) -> None:
        try:
            for _ in watchfiles.watch(*paths, watch_filter=SourceFilter(), recursive=recursive, stop_event=stop,
                                      debounce=400, step=100, raise_interrupt=False):
                runner.scheduler.add_job(wake, "date", run_date=runner.clock(), id="changed", name="files changed",
                                         args=[str(runner.root), "files changed"], jobstore="memory",
                                         replace_existing=True)
        except Exception:  # no inotify (a container, a limit): the periodic check still sees every change
            log.warning("cannot watch %s; changes there are seen by the periodic check",
                        ", ".join(map(str, paths)), exc_info=True)

    folders = [folder for folder in (config.path("content"), config.path("templates")) if folder.is_dir()]
    threads = [threading.Thread(target=watch, args=(folders, True), name="publisher-watch-sources", daemon=True),
               threading.Thread(target=watch, args=([config.root], False), name="publisher-watch-site", daemon=True)]
    for thread in threads[0 if folders else 1:]:
        thread.start()
    return [thread for thread in threads if thread.is_alive() or thread.ident]
