"""Read `publisher.toml` into a frozen, typed `Config`, reporting every bad key at once."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import babel

from publisher.problems import EditorError, Problem
from publisher.text import clean_text

CONFIG_NAME = "publisher.toml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# A value that is one string for every language, or a table of language -> string.
Localized = Mapping[str, str]


@dataclass(frozen=True)
class NewsletterConfig:
    """The weekly issue and alert emails."""

    from_name: Localized = field(default_factory=lambda: {"": ""}, metadata={"doc": "sender name; default: the site title"})
    from_address: str = field(default="", metadata={"doc": "sender address; default: newsletter@ the base_url host"})
    reply_to: str = field(default="", metadata={"doc": "Reply-To address; default: from_address"})
    list_id: str = field(default="", metadata={"doc": "List-Id domain part; default: weekly.<host>"})
    alerts_list_id: str = field(default="", metadata={"doc": "List-Id domain part of alert emails; default: alerts.<host>"})
    unsubscribe_url: str = field(default="", metadata={"doc": "https URL of the one-click unsubscribe endpoint"})
    unsubscribe_mailto: str = field(default="", metadata={"doc": "address that unsubscribes whoever writes to it"})
    weekday: str = field(default="monday", metadata={"doc": "day the weekly issue goes out"})
    time: str = field(default="09:00", metadata={"doc": "local time (HH:MM) the weekly issue goes out"})
    max_html_kb: int = field(default=90, metadata={"doc": "HTML budget per email, under Gmail's ~102 KB clip"})
    alert_word: Localized = field(
        default_factory=lambda: {"en": "URGENT", "az": "TƏCİLİ", "ru": "СРОЧНО"},
        metadata={"doc": "subject prefix of alert emails, per language"},
    )
    discreet_from_name: Localized = field(
        default_factory=lambda: {"en": "Weekly digest", "az": "Həftəlik icmal", "ru": "Еженедельный обзор"},
        metadata={"doc": "neutral sender name for subscribers in discreet mode"},
    )
    discreet_subject: Localized = field(
        default_factory=lambda: {"en": "Your weekly digest", "az": "Həftəlik icmalınız", "ru": "Ваш еженедельный обзор"},
        metadata={"doc": "neutral subject line for subscribers in discreet mode"},
    )


@dataclass(frozen=True)
class FeedsConfig:
    """RSS, Atom and JSON feeds."""

    limit: int = field(default=50, metadata={"doc": "newest entries per feed"})


@dataclass(frozen=True)
class LintConfig:
    """The safety checks of `publisher check`: limits, and the redaction list."""

    max_title: int = field(default=80, metadata={"doc": "longest title (an email subject), in characters, before a warning"})
    max_summary: int = field(default=200, metadata={"doc": "longest summary (the email preheader), in characters, before a warning"})
    max_image_kb: int = field(default=300, metadata={"doc": "largest published image, in KB, before a warning (too heavy for email)"})
    redaction_list: str = field(
        default="redactions.txt",
        metadata={"doc": "file of salted hashes of names never to publish, relative to the site folder; never under content/"},
    )


@dataclass(frozen=True)
class ScheduleConfig:
    """`publisher schedule`: publishing on time and delivering the weekly issue and alerts."""

    misfire_grace_seconds: int = field(default=86400, metadata={"doc": "how late a missed weekly slot may still go out (after downtime), at most a week; later, its entries go with the next issue"})
    alert_check_seconds: int = field(default=30, metadata={"doc": "seconds between safety checks for due embargoes, alerts and changed files (at most 60)"})
    retry_seconds: int = field(default=60, metadata={"doc": "first wait before retrying a failed delivery; doubles on each failure"})
    retry_max_seconds: int = field(default=3600, metadata={"doc": "longest wait between delivery retries, at most a day"})
    deliver: bool = field(default=True, metadata={"doc": "false: publish on time but send nothing (deliver by hand with publisher send)"})
    watch: bool = field(default=True, metadata={"doc": "rebuild as soon as a file changes (inotify); polling every alert_check_seconds runs regardless"})
    job_store: str = field(default="", metadata={"doc": "SQLAlchemy URL of APScheduler's job store; default: SQLite in the state folder"})


@dataclass(frozen=True)
class DeliveryConfig:
    """`publisher send`: signing, pacing and retries (the transport is SMTP when [smtp] host is set)."""

    secret_env: str = field(default="PUBLISHER_SECRET", metadata={"doc": "environment variable holding the secret that signs unsubscribe and confirmation links"})
    rate: float = field(default=10.0, metadata={"doc": "messages per second at most; 0: no limit"})
    retries: int = field(default=5, metadata={"doc": "retries of a message after a 4xx reply or a dropped connection"})
    backoff: float = field(default=2.0, metadata={"doc": "seconds before the first retry; doubles on each retry (at most 300)"})
    in_doubt: str = field(default="resend", metadata={"doc": "a message in flight when a run was killed: resend (at-least-once) or skip (at-most-once)"})


@dataclass(frozen=True)
class SmtpConfig:
    """The SMTP relay; without a host, messages go to the outbox folder in the state folder."""

    host: str = field(default="", metadata={"doc": "relay host name; empty: write messages to state/outbox/ instead"})
    port: int = field(default=0, metadata={"doc": "relay port; default: 587 for starttls, 465 for tls, 25 for none (and auto to this machine)"})
    security: str = field(default="auto", metadata={"doc": "auto (starttls to a remote relay, none to one on this machine), starttls, tls or none"})
    username: str = field(default="", metadata={"doc": "login name at the relay; empty: no authentication"})
    password_env: str = field(default="PUBLISHER_SMTP_PASSWORD", metadata={"doc": "environment variable holding the relay password"})
    envelope_from: str = field(default="", metadata={"doc": "envelope sender (where bounces go); default: newsletter.from_address"})
    helo: str = field(default="", metadata={"doc": "name given in EHLO; default: the base_url host"})
    timeout: float = field(default=30.0, metadata={"doc": "seconds to wait for the relay before treating it as a dropped connection"})


@dataclass(frozen=True)
class SubscriptionsConfig:
    """`publisher serve-subscriptions`: one-click unsubscribe and double opt-in, behind the web server."""

    host: str = field(default="127.0.0.1", metadata={"doc": "address to listen on; keep it on loopback behind the web server"})
    port: int = field(default=8025, metadata={"doc": "port to listen on"})
    url: str = field(default="", metadata={"doc": "public https URL the app is reached at; default: base_url (so /unsubscribe, /subscribe, /confirm)"})
    confirm_days: int = field(default=7, metadata={"doc": "days a double opt-in confirmation link stays valid"})
    rate_per_minute: int = field(default=20, metadata={"doc": "requests per minute one client may make that send email or carry a bad token"})
    trust_forwarded: bool = field(default=False, metadata={"doc": "tell clients apart by the web server's X-Forwarded-For (only behind a proxy that sets it)"})


@dataclass(frozen=True)
class Config:
    """A whole site's settings; `root` is the folder holding publisher.toml."""

    root: Path
    base_url: str = field(metadata={"doc": "absolute https URL the site is published at"})
    tag_authority: str = field(metadata={"doc": "RFC 4151 tagging entity for entry ids: 'domain,YYYY'"})
    title: Localized = field(metadata={"doc": "site title, one string or a table per language"})
    description: Localized = field(default_factory=lambda: {"": ""}, metadata={"doc": "one-line description"})
    author: str = field(default="", metadata={"doc": "organisation named as author in feeds; default: the title"})
    timezone: str = field(default="Asia/Baku", metadata={"doc": "IANA zone for dates without an offset and issue weeks"})
    languages: tuple[str, ...] = field(default=("en", "az", "ru"), metadata={"doc": "languages the site publishes in"})
    default_language: str = field(default="en", metadata={"doc": "language of entries that name none"})
    content_dir: str = field(default="content", metadata={"doc": "folder of entries and files to publish"})
    templates_dir: str = field(default="templates", metadata={"doc": "folder of site templates (overrides built-ins)"})
    output_dir: str = field(default="output", metadata={"doc": "folder the build writes"})
    state_dir: str = field(default="state", metadata={"doc": "folder of ledgers and databases, never published"})
    newsletter: NewsletterConfig = field(default_factory=NewsletterConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lint: LintConfig = field(default_factory=LintConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    subscriptions: SubscriptionsConfig = field(default_factory=SubscriptionsConfig)

    @cached_property  # asked for tens of thousands of times a build (every date shown, every issue's week)
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property  # each image an entry shows is checked to lie inside it
    def content_root(self) -> str:
        """content/ as an absolute path with every link in it resolved."""
        return os.path.realpath(self.path("content"))

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def path(self, name: str) -> Path:
        """Return one of the configured folders as an absolute path."""
        return self.root / getattr(self, f"{name}_dir")

    def text(self, value: Localized, lang: str) -> str:
        """Pick a localized value: the language, then the default language, then any."""
        for key in (lang, self.default_language, ""):
            if value.get(key):
                return value[key]
        return next(iter(value.values()), "")


SECTIONS: dict[str, type] = {"newsletter": NewsletterConfig, "feeds": FeedsConfig, "schedule": ScheduleConfig, "lint": LintConfig,
                           "delivery": DeliveryConfig, "smtp": SmtpConfig, "subscriptions": SubscriptionsConfig}


def load_config(root: Path) -> Config:
    """Read `root/publisher.toml`; raise EditorError listing every problem."""
    path = root / CONFIG_NAME
    rel = CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EditorError([Problem(rel, 1, f"no {CONFIG_NAME} here: run publisher in the site folder or pass --site")])
    except (OSError, UnicodeDecodeError) as exc:
        raise EditorError([Problem(rel, 1, f"cannot read the file: {exc}")])
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise EditorError([Problem(rel, _toml_error_line(exc), f"TOML syntax error: {_toml_error_text(exc)}")])
    except ValueError as exc:  # tomllib lets int()'s limit on very long numbers through
        raise EditorError([Problem(rel, 1, f"a value cannot be read ({exc})")])
    reader = _Reader(rel, _key_lines(text))
    config = reader.read(data, root.resolve())
    if reader.problems:
        raise EditorError(reader.problems)
    return config


class _Reader:
    """Check a parsed TOML document against the dataclasses, gathering problems."""

    def __init__(self, rel: str, lines: dict[tuple[str, ...], int]):
        self.rel = rel
        self.lines = lines
        self.problems: list[Problem] = []
        self.localized: list[tuple[tuple[str, ...], Localized]] = []  # as written, for language checks

    def problem(self, where: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(self.rel, self._line(where), message))

    def _line(self, where: tuple[str, ...]) -> int:
        while where:
            if where in self.lines:
                return self.lines[where]
            where = where[:-1]
        return 1

    def read(self, data: dict, root: Path) -> Config:
        values = self.section(data, Config, (), skip={"root", *SECTIONS})
        for name, cls in SECTIONS.items():
            table = data.get(name, {})
            if not isinstance(table, dict):
                self.problem((name,), f"'{name}' must be a table ([{name}])")
                table = {}
            values[name] = cls(**self.section(table, cls, (name,)))
        # A missing or unreadable required key is already reported; stand in a value that
        # passes its own checks so every other key is still checked.
        config = Config(root=root, **{**_STAND_INS, **values})
        self.check_site(config)
        return config

    def section(self, table: dict, cls: type, where: tuple[str, ...], skip: set[str] = frozenset()) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key not in fields:
                if key in skip:
                    continue
                self.problem(where + (key,), f"unknown key '{_dotted(where, key)}'{_suggest(key, fields)}")
                continue
            value = self.convert(raw, hints[key], where + (key,))
            if value is not None:
                values[key] = value
        for name, f in fields.items():
            if _required(f) and name not in table:
                self.problem(where or ("",), f"missing required key '{_dotted(where, name)}'")
        return values

    def convert(self, raw: Any, hint: Any, where: tuple[str, ...]) -> Any:
        name = ".".join(where)
        if hint is str:
            if isinstance(raw, str):
                return clean_text(raw)
            return self.problem(where, f"'{name}' must be a string")
        if hint is int:
            if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
                return raw
            return self.problem(where, f"'{name}' must be a positive whole number")
        if hint is float:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 <= raw < float("inf"):
                return float(raw)
            return self.problem(where, f"'{name}' must be a number, 0 or more")
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            return self.problem(where, f"'{name}' must be true or false")
        if hint == tuple[str, ...]:
            if isinstance(raw, list) and raw and all(isinstance(x, str) and x for x in raw):
                return tuple(clean_text(x) for x in raw)
            return self.problem(where, f"'{name}' must be a non-empty list of strings")
        if hint == Localized:
            if isinstance(raw, str):
                return {"": clean_text(raw)}
            if isinstance(raw, dict) and raw and all(isinstance(v, str) for v in raw.values()):
                self.localized.append((where, raw))
                return {lang: clean_text(text) for lang, text in raw.items()}
            return self.problem(where, f"'{name}' must be a string or a table of language = \"text\"")
        raise TypeError(f"no reader for {hint!r}")  # a bug in the schema, not an editor mistake

    def check_site(self, c: Config) -> None:
        base = urlsplit(c.base_url)
        if base.scheme not in ("https", "http") or not base.hostname or base.query or base.fragment or \
                not re.fullmatch(r"[A-Za-z0-9\-._~:/%!$&'()*+,;=@\[\]]+", c.base_url) or base.username:
            self.problem(("base_url",), "'base_url' must be an absolute http(s) URL such as https://example.org/")
        elif not c.base_url.endswith("/"):
            self.problem(("base_url",), "'base_url' must end with '/'")
        if not re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,},\d{4}(-\d\d(-\d\d)?)?", c.tag_authority):
            self.problem(("tag_authority",), "'tag_authority' must be 'domain,YYYY' (RFC 4151), e.g. 'example.org,2024'")
        try:
            ZoneInfo(c.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(("timezone",), f"unknown time zone '{c.timezone}' (use an IANA name such as Asia/Baku)")
        for lang in c.languages:
            if not _known_locale(lang):
                self.problem(("languages",), f"unknown language '{lang}' (use a code such as en, az, ru)")
        if len(set(c.languages)) != len(c.languages):
            self.problem(("languages",), "'languages' lists a language twice")
        if c.default_language not in c.languages:
            self.problem(("default_language",), f"default_language '{c.default_language}' is not in 'languages'")
        for where, value in self.localized:
            for lang in value:
                if lang not in c.languages:
                    self.problem(where + (lang,), f"'{'.'.join(where)}' names '{lang}', which is not in 'languages'")
        self.check_newsletter(c)
        self.check_schedule(c)
        self.check_lint(c)
        self.check_delivery(c)

    def check_newsletter(self, c: Config) -> None:
        n = c.newsletter
        if n.weekday.lower() not in WEEKDAYS:
            self.problem(("newsletter", "weekday"), "'newsletter.weekday' must be a day name such as monday")
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", n.time):
            self.problem(("newsletter", "time"), "'newsletter.time' must be HH:MM, e.g. 09:00")
        for key in ("list_id", "alerts_list_id"):
            if getattr(n, key) and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", getattr(n, key)):
                self.problem(("newsletter", key), f"'newsletter.{key}' must be a dotted name such as weekly.example.org")
        if n.unsubscribe_url and urlsplit(n.unsubscribe_url).scheme != "https":
            self.problem(("newsletter", "unsubscribe_url"), "'newsletter.unsubscribe_url' must be an https URL")
        for key in ("from_address", "reply_to", "unsubscribe_mailto"):
            value = getattr(n, key)
            if value and not re.fullmatch(r"[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", value):
                self.problem(("newsletter", key), f"'newsletter.{key}' must be a plain address such as news@example.org")

    def check_delivery(self, c: Config) -> None:
        d, s, sub = c.delivery, c.smtp, c.subscriptions
        if d.in_doubt not in ("resend", "skip"):
            self.problem(("delivery", "in_doubt"), "'delivery.in_doubt' must be resend or skip")
        if s.security not in ("auto", "starttls", "tls", "none"):
            self.problem(("smtp", "security"), "'smtp.security' must be auto, starttls, tls or none")
        for where, port in ((("smtp", "port"), s.port), (("subscriptions", "port"), sub.port)):
            if port > 65535:
                self.problem(where, f"'{'.'.join(where)}' must be a port number up to 65535")
        for where, name in ((("delivery", "secret_env"), d.secret_env), (("smtp", "password_env"), s.password_env)):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.problem(where, f"'{'.'.join(where)}' must name an environment variable, e.g. PUBLISHER_SECRET")
        if s.envelope_from and not re.fullmatch(r"[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", s.envelope_from):
            self.problem(("smtp", "envelope_from"), "'smtp.envelope_from' must be a plain address such as bounces@example.org")
        if s.host and not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", s.host):
            self.problem(("smtp", "host"), "'smtp.host' must be a host name or IP address")
        if sub.url and (urlsplit(sub.url).scheme != "https" or not sub.url.endswith("/")):
            self.problem(("subscriptions", "url"), "'subscriptions.url' must be an https URL ending with '/'")

    def check_lint(self, c: Config) -> None:
        # The list must be committed with the site but never published, so not under content/ or output/.
        path = (c.root / c.lint.redaction_list).resolve()
        for name in ("content", "output"):
            if path.is_relative_to(c.path(name).resolve()):
                self.problem(("lint", "redaction_list"), f"'lint.redaction_list' must be outside {name}/, "
                                                         "or the hashes would be published")

    def check_schedule(self, c: Config) -> None:
        s = c.schedule
        if s.alert_check_seconds > 60:
            self.problem(("schedule", "alert_check_seconds"), "'schedule.alert_check_seconds' must be at most 60, "
                                                               "or an alert could go out more than a minute late")
        if s.misfire_grace_seconds > 7 * 86400:
            self.problem(("schedule", "misfire_grace_seconds"), "'schedule.misfire_grace_seconds' must be at most "
                                                                 "604800 (a week): by then the next weekly slot has come")
        if s.retry_max_seconds > 86400:
            self.problem(("schedule", "retry_max_seconds"), "'schedule.retry_max_seconds' must be at most 86400 (a day)")
        elif s.retry_max_seconds < s.retry_seconds:
            self.problem(("schedule", "retry_max_seconds"), "'schedule.retry_max_seconds' must not be below 'retry_seconds'")
        if s.job_store:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                url = make_url(s.job_store)
            except ArgumentError:
                self.problem(("schedule", "job_store"), "'schedule.job_store' must be a database URL such as "
                                                        "sqlite:////var/lib/publisher/jobs.sqlite")
                return
            if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
                path = (c.root / url.database).resolve()  # a relative SQLite path is read from the site folder
                for name in ("output", "content"):
                    if path.is_relative_to(c.path(name).resolve()):
                        self.problem(("schedule", "job_store"), f"'schedule.job_store' must be outside {name}/, "
                                                                "or the scheduler's state would be published")


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


_STAND_INS = {"base_url": "https://stand-in.invalid/", "tag_authority": "stand-in.invalid,2000", "title": {"": ""}}


def _known_locale(lang: str) -> bool:
    try:
        babel.Locale.parse(lang)
        return True
    except (ValueError, babel.UnknownLocaleError):
        return False


def _dotted(where: tuple[str, ...], key: str) -> str:
    return ".".join(where + (key,))


def _suggest(key: str, fields: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table and key path to the line that defines it (tomllib keeps no positions)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        assignment = re.match(r'^((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|[A-Za-z0-9_-]+))*)\s*=', stripped)
        if assignment:
            path = table + _split_key(assignment.group(1))
            lines.setdefault(path, number)
            for inner in re.finditer(r'[{,]\s*([A-Za-z0-9_-]+|"[^"]*")\s*=', stripped):
                lines.setdefault(path + (inner.group(1).strip('"'),), number)
    return lines


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", dotted))


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int:
    match = re.search(r"line (\d+)", str(exc))
    return int(match.group(1)) if match else 1


def _toml_error_text(exc: tomllib.TOMLDecodeError) -> str:
    return re.sub(r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", str(exc))
