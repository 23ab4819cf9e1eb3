"""The command line: one library call per command, problems printed as path:line: message."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from publisher import __version__
from publisher.problems import EditorError, Problem


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except EditorError as error:
        return report(error.problems)
    except KeyboardInterrupt:
        print("interrupted; the previous output is unchanged", file=sys.stderr)
        return 130


def run() -> None:
    """The program's entry point: run the command, then leave without tearing the interpreter down.

    A build's site and caches are still in memory when the command returns, and freeing
    them one by one at exit took 0.06 s of a 1.5 s one-edit build. Exit handlers (logging's
    flush among them) still run. The teardown is skipped only with no other thread left, and
    not under a profiler or tracer (coverage, cProfile, pyinstrument report after the program returns).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if threading.active_count() == 1 and sys.getprofile() is None and sys.gettrace() is None:
        atexit._run_exitfuncs()
        os._exit(code)
    raise SystemExit(code)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="publisher", description="Newsletters, alerts, feeds and a web archive from Markdown.")
    parser.add_argument("--version", action="version", version=f"publisher {__version__}")
    site = argparse.ArgumentParser(add_help=False)
    site.add_argument("--site", type=Path, default=Path("."), help="site folder holding publisher.toml (default: .)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = commands.add_parser("check", parents=[site], help="report every problem in config and content; write nothing")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument("--now", type=parse_now, help="the moment to check against (ISO 8601; default: now)")
    check.set_defaults(run=run_check)

    build = commands.add_parser("build", parents=[site], help="build output/ as the site stands at --now")
    build.add_argument("--now", type=parse_now, help="the moment to publish as of (ISO 8601; default: now)")
    build.set_defaults(run=run_build)

    new = commands.add_parser("new", parents=[site], help="start a draft entry and print its path")
    new.add_argument("type", choices=["update", "campaign", "alert"], help="kind of entry")
    new.add_argument("title", help="the entry's title")
    new.add_argument("--lang", help="language code (default: the site's default language)")
    new.add_argument("--now", type=parse_now, help="the entry's date (ISO 8601; default: now)")
    new.set_defaults(run=run_new)
    redact = commands.add_parser("redact", help="manage the list of names that must never be published")
    redact_actions = redact.add_subparsers(title="actions", metavar="ACTION")
    redact_add = redact_actions.add_parser("add", parents=[site], help="add a name (asked for, unseen, when not given)")
    redact_add.add_argument("name", nargs="?", help="the name; omit it to type it unseen and keep it out of shell history")
    redact_add.set_defaults(run=run_redact_add)

    schedule = commands.add_parser("schedule", parents=[site], help="publish on time and deliver the weekly issue and alerts (foreground)")
    schedule.add_argument("--once", action="store_true", help="do whatever is due now, then exit (for cron)")
    schedule.add_argument("--now", type=parse_now, help="with --once: the moment to act as of (ISO 8601; default: now)")
    schedule.add_argument("--verbose", action="store_true", help="log every wake-up, and APScheduler's own messages")
    schedule.set_defaults(run=run_schedule)
    issue = commands.add_parser("issue", parents=[site], help="build one weekly issue (web copy, text, .eml) outside output/")
    issue.add_argument("week", type=parse_week, help="ISO week of the entries, e.g. 2026-W47 (site time zone)")
    issue.add_argument("--lang", help="language of the issue (default: the site's default language)")
    issue.add_argument("--now", type=parse_now, help="the moment to build as of (ISO 8601; default: now)")
    issue.add_argument("--out", type=Path, help="folder to write index.html, issue.txt and issue.eml into "
                                                "(default: print the plain text)")
    issue.set_defaults(run=run_issue)
    subscribers = commands.add_parser("subscribers", help="manage the subscriber list (kept in the state folder only)")
    actions = subscribers.add_subparsers(title="actions", metavar="ACTION")
    sub_add = actions.add_parser("add", parents=[site], help="add an address, or change its language, lists or discreet flag")
    sub_add.add_argument("address")
    sub_add.add_argument("--lang", help="language of the messages it gets (default: the site's default language)")
    sub_add.add_argument("--lists", default="weekly,alerts", help="comma-separated: weekly, alerts (default: both)")
    sub_add.add_argument("--discreet", action="store_true", help="send with the neutral sender name and subject")
    sub_add.add_argument("--status", default="active", choices=["active", "pending"], help="default: active")
    sub_add.add_argument("--now", type=parse_now, help=argparse.SUPPRESS)
    sub_add.set_defaults(run=run_subscribers_add)
    sub_import = actions.add_parser("import", parents=[site], help="import a CSV file (address[,language,lists,discreet,status])")
    sub_import.add_argument("csv", type=Path)
    sub_import.add_argument("--status", default="active", choices=["active", "pending"], help="status of rows that give none")
    sub_import.add_argument("--now", type=parse_now, help=argparse.SUPPRESS)
    sub_import.set_defaults(run=run_subscribers_import)
    sub_list = actions.add_parser("list", parents=[site], help="list subscribers with masked addresses, and counts")
    sub_list.add_argument("--status", choices=["pending", "active", "unsubscribed", "bounced"], help="only this status")
    sub_list.add_argument("--unmasked", action="store_true", help="show whole addresses (mind who can see your screen)")
    sub_list.set_defaults(run=run_subscribers_list)
    sub_remove = actions.add_parser("remove", parents=[site], help="delete an address and its settings for good")
    sub_remove.add_argument("address")
    sub_remove.set_defaults(run=run_subscribers_remove)
    sub_export = actions.add_parser("export", parents=[site], help="write every subscriber as CSV (to stdout or --output)")
    sub_export.add_argument("--output", type=Path, help="file to write, created private to you (never inside the site's published folders)")
    sub_export.set_defaults(run=run_subscribers_export)
    sub_mail = actions.add_parser("unsubscribe-mail", parents=[site],
                                  help="read a message to the unsubscribe address on stdin and honour its token (for the mail server)")
    sub_mail.set_defaults(run=run_subscribers_unsubscribe_mail)

    send = commands.add_parser("send", parents=[site], help="send a weekly issue (2026-W47) or an alert (slug) to its subscribers")
    send.add_argument("target", metavar="ISSUE|ALERT", help="a week such as 2026-W47, or an alert's slug or key")
    send.add_argument("--dry-run", action="store_true", help="count and build every message; send and record nothing")
    send.add_argument("--now", type=parse_now, help="the moment to send as of (ISO 8601; default: now)")
    send.set_defaults(run=run_send)

    serve = commands.add_parser("serve-subscriptions", parents=[site], help="run the unsubscribe and double opt-in web endpoint")
    serve.add_argument("--host", help="address to listen on (default: [subscriptions] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [subscriptions] port, 8025)")
    serve.set_defaults(run=run_serve_subscriptions)
    preview = commands.add_parser("preview", parents=[site], help="serve the site, drafts and emails locally; rebuild on save")
    preview.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    preview.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks a free one)")
    preview.add_argument("--now", type=parse_now, help="preview as of this moment (ISO 8601; default: the clock at each rebuild)")
    preview.set_defaults(run=run_preview)
    return parser


def parse_now(text: str) -> datetime:
    """Read --now; a value without an offset is UTC, so the clock is never ambiguous."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; use ISO 8601 such as 2026-11-23T09:00:00+04:00")
    if not 1900 <= value.year <= 2999:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; use a year from 1900 to 2999")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def clock(args: argparse.Namespace) -> datetime:
    """Return --now, or the wall clock: the only place the clock is read."""
    return args.now or datetime.now(timezone.utc)


def run_check(args: argparse.Namespace) -> int:
    from publisher.check import check

    problems = check(args.site, clock(args))
    failing = [p for p in problems if args.strict or not p.warning]
    if problems:
        report(problems, exit_code=0)
    if failing:
        return 1
    print("ok: no problems found" if not problems else "ok: warnings only", file=sys.stderr)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from publisher import stamp
    from publisher.config import load_config

    now, config = clock(args), load_config(args.site)
    survey = _survey_while_loading_the_build(config, now)
    last = stamp.unchanged(config, now, survey.signature)
    if last:  # nothing changed since the last build, and the clock passed no moment that matters
        result = argparse.Namespace(files=last.result[0], entries=last.result[1], warnings=last.result[2])
    else:
        from publisher.build import build  # the whole rendering stack: imported only when there is work

        if survey.listed is None:  # withheld by a walk that foresaw an early stop, yet a build ran meanwhile
            survey = stamp.survey(config)
        _HELD.clear()  # at most one build's site held: main() may be called many times in one process
        result = build(args.site, now, survey, keep=_HELD)
    note = f"; {result.warnings} warning(s): run publisher check" if result.warnings else ""
    print(f"built {result.files} files from {result.entries} published entries{note}", file=sys.stderr)
    return 0


# What the last build loaded, held until the process exits (see run): freeing it is the exit's job.
_HELD: list = []

# The rendering stack, in the order publisher.build would import it, in steps of 10 to 40 ms.
RENDERING_STACK = ("publisher.content", "publisher.templates", "publisher.markup", "publisher.render",
                   "publisher.archive", "publisher.newsletter", "publisher.build")


def _survey_while_loading_the_build(config, now: datetime):
    """Take stamp.survey; where a second core may be used, walk there while the rendering stack is imported here.

    At 10,000 entries the walk (20,000 stats) and the imports take a tenth of a second or more
    each: side by side, a one-edit build starts rendering that much sooner. Importing stops
    as soon as the walk is done, and a walk that finds nothing to do keeps its listing (2.5 MB
    to send), so a build with nothing to do stops about as early as before.
    """
    from functools import partial
    from importlib import import_module

    from publisher import parallel, stamp

    walking = parallel.aside(partial(_walk_aside, config, now))
    if walking is None:
        return stamp.survey(config)
    try:
        for module in RENDERING_STACK:
            if walking.ready():
                break
            import_module(module)
        survey = walking.result()
    finally:
        walking.stop()
    return survey or stamp.survey(config)  # a walk that failed is taken again here, to raise its error


def _walk_aside(config, now: datetime):
    """stamp.survey, without its listing when the build will stop early (listed None: withheld)."""
    from publisher import stamp

    survey = stamp.survey(config)
    if stamp.unchanged(config, now, survey.signature):
        survey.listed = None
    return survey


def run_new(args: argparse.Namespace) -> int:
    from publisher.config import load_config
    from publisher.new import new_entry

    config = load_config(args.site)
    path = new_entry(config, args.type, args.title, args.lang or config.default_language, clock(args))
    print(path.relative_to(config.root.resolve()) if path.is_relative_to(config.root.resolve()) else path)
    return 0


def parse_week(text: str) -> str:
    """Read an ISO week key such as 2026-W47."""
    import re

    match = re.fullmatch(r"(\d{4})-?W(\d{2})", text.strip(), re.I)
    week = f"{match.group(1)}-W{match.group(2)}" if match else ""
    try:
        datetime.fromisocalendar(int(match.group(1)), int(match.group(2)), 1) if match else None
    except ValueError:
        match = None
    if not match:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; use an ISO week such as 2026-W47")
    return week


def run_issue(args: argparse.Namespace) -> int:
    from publisher.newsletter import preview_issue, write_issue

    if args.out is None:
        sys.stdout.write(preview_issue(args.site, args.week, args.lang, clock(args)).text)
        return 0
    for path in write_issue(args.site, args.week, args.lang, clock(args), args.out):
        print(path)
    return 0


def report(problems: Sequence[Problem], exit_code: int = 1) -> int:
    """Print problems sorted as path:line: message, then a count."""
    for problem in problems:
        print(problem, file=sys.stderr)
    errors = sum(not p.warning for p in problems)
    warnings = len(problems) - errors
    parts = [f"{errors} error{'s' * (errors != 1)}"] + ([f"{warnings} warning{'s' * (warnings != 1)}"] if warnings else [])
    print(", ".join(parts), file=sys.stderr)
    return exit_code


def run_redact_add(args: argparse.Namespace) -> int:
    import getpass

    from publisher.config import load_config
    from publisher.redaction import add

    config = load_config(args.site)
    name = args.name or getpass.getpass("Name to keep out of everything published (not shown): ")
    count = add(config, name)
    print(f"added to {config.lint.redaction_list} ({count} name{'s' * (count != 1)}); "
          f"run `publisher check` to find it in content", file=sys.stderr)
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    from publisher.locking import SchedulerBusy
    from publisher.logs import configure_logging
    from publisher.schedule import run_once, serve

    if args.now and not args.once:
        print("error: --now needs --once (a running scheduler follows the real clock)", file=sys.stderr)
        return 2
    configure_logging(args.verbose)
    try:
        if args.once:
            return 0 if run_once(args.site, clock(args)).ok else 1
        return serve(args.site, lambda: datetime.now(timezone.utc))
    except SchedulerBusy as busy:
        print(f"error: {busy}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again when the other scheduler has stopped


def run_subscribers_add(args: argparse.Namespace) -> int:
    from publisher.subscribers import edit_subscriber

    print(edit_subscriber(args.site, "add", clock(args), address=args.address, language=args.lang,
                          lists=args.lists.split(","), discreet=args.discreet, status=args.status), file=sys.stderr)
    return 0


def run_subscribers_import(args: argparse.Namespace) -> int:
    from publisher.subscribers import edit_subscriber

    print(edit_subscriber(args.site, "import", clock(args), path=args.csv, status=args.status), file=sys.stderr)
    return 0


def run_subscribers_list(args: argparse.Namespace) -> int:
    from publisher.subscribers import listing

    for line in listing(args.site, status=args.status, unmasked=args.unmasked):
        print(line)
    return 0


def run_subscribers_remove(args: argparse.Namespace) -> int:
    from publisher.subscribers import edit_subscriber

    print(edit_subscriber(args.site, "remove", datetime.now(timezone.utc), address=args.address), file=sys.stderr)
    return 0


def run_subscribers_export(args: argparse.Namespace) -> int:
    from publisher.subscribers import export

    print(export(args.site, args.output, sys.stdout), file=sys.stderr)
    return 0


def run_subscribers_unsubscribe_mail(args: argparse.Namespace) -> int:
    from publisher.config import load_config
    from publisher.subscriptions import unsubscribe_by_mail

    done = unsubscribe_by_mail(load_config(args.site), sys.stdin.buffer.read(), datetime.now(timezone.utc))
    print("unsubscribed" if done else "no valid unsubscribe token in the message; nothing changed", file=sys.stderr)
    return 0  # never bounce: a bounce would tell the sender whether the token was good


def run_send(args: argparse.Namespace) -> int:
    import logging

    from publisher.config import load_config
    from publisher.delivery import progress_reporter, send
    from publisher.transports import DeliveryError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    config = load_config(args.site)
    try:
        result = send(config, args.target, clock(args), dry_run=args.dry_run, progress=progress_reporter(sys.stderr),
                      clock=lambda: datetime.now(timezone.utc))
    except DeliveryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary(), file=sys.stderr)
    return 0 if result.complete else 75  # EX_TEMPFAIL: some messages wait for the next run


def run_serve_subscriptions(args: argparse.Namespace) -> int:
    import logging

    from publisher.config import load_config
    from publisher.subscriptions import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s", stream=sys.stderr)
    config = load_config(args.site)
    serve(config, args.host or config.subscriptions.host, args.port or config.subscriptions.port,
          clock=lambda: datetime.now(timezone.utc))
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from publisher.preview import serve

    serve(args.site, args.host, args.port, clock=lambda: clock(args))
    return 0
