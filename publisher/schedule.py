"""`publisher schedule`: when to look. APScheduler wakes the site up; publisher.autopublish acts.

The wake-ups: a date job per future moment (an embargo lifting, an action expiring, a
retry), the weekly cron job at the configured weekday, time and zone, a periodic safety
check, and file changes. Jobs that must survive a restart live in APScheduler's SQLAlchemy
job store (state/schedule-jobs.sqlite by default); what is owed lives in the ledgers, so a
lost, doubled or late wake-up does no harm. One scheduler runs per site (state/schedule.lock).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path

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
from publisher.autopublish import Clock, Outcome, Runner
from publisher.config import CONFIG_NAME, Config, load_config
from publisher.locking import site_lock
from publisher.problems import EditorError, Problem
from publisher.sources import is_source

log = logging.getLogger("publisher.schedule")

JOBS_NAME = "schedule-jobs.sqlite"
WAKE_PREFIX = "wake-at:"
PLAN_LIMIT = 500  # future wake-ups kept in the job store; the periodic check covers any beyond

# APScheduler stores a job's function by its textual reference ("module:name"), so a job
# read back from SQLite cannot carry the runner; it finds the runner of its site here.
_RUNNERS: dict[str, Runner] = {}


def wake(root: str, reason: str) -> None:
    """Run one reconciliation of the site at `root` (the target of every stored job)."""
    runner = _RUNNERS.get(root)
    if runner is None:
        log.warning("woken for %s (%s) but no scheduler of that site runs here", root, reason)
        return
    runner.tick(reason)


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


class WakeUps:
    """Keep the job store's jobs in step with the site: one date job per future moment, plus the fixed ones."""

    def __init__(self, scheduler: SiteScheduler, root: Path):
        self.scheduler = scheduler
        self.root = root
        self.planned: set[str] | None = None
        self.installed: tuple | None = None  # the settings the weekly and check jobs were made from

    def install(self, config: Config, now: datetime) -> None:
        """Make the weekly and check jobs, unless nothing they depend on changed."""
        if jobs_settings(config) != self.installed:
            install_jobs(self.scheduler, config, self.root, now)
            self.installed = jobs_settings(config)

    def __call__(self, config: Config, moments: list[datetime], now: datetime) -> None:
        """Keep one date-triggered job per moment (the first PLAN_LIMIT) in the persistent store."""
        self.install(config, now)
        wanted = {f"{WAKE_PREFIX}{m.isoformat()}": m for m in moments[:PLAN_LIMIT]}
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
        runner = Runner(root, lambda: now, WakeUps(scheduler, root.resolve()))
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
        wake_ups = WakeUps(scheduler, root.resolve())
        runner = Runner(root, clock, wake_ups)
        _RUNNERS[str(runner.root)] = runner
        try:
            wake_ups.install(runner.config, clock())
            scheduler.resume()
            watchers = start_watcher(runner, scheduler, stop) if runner.config.schedule.watch else []
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


def start_watcher(runner: Runner, scheduler: SiteScheduler, stop: threading.Event) -> list[threading.Thread]:
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
                scheduler.add_job(wake, "date", run_date=runner.clock(), id="changed", name="files changed",
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
