"""The command line: one library call per command, problems printed as path:line: message."""

from __future__ import annotations

import argparse
import sys
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
    return parser


def parse_now(text: str) -> datetime:
    """Read --now; a value without an offset is UTC, so the clock is never ambiguous."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; use ISO 8601 such as 2026-11-23T09:00:00+04:00")
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
    from publisher.build import build

    result = build(args.site, clock(args))
    print(f"built {result.files} files from {result.entries} published entries", file=sys.stderr)
    return 0


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
    from publisher.schedule import configure_logging, run_once, serve

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
