"""Send an issue or alert to every subscriber exactly once, resumably, through the configured transport.

The ledger (SQLite, beside the subscriber list) holds one row per mailing and subscriber:
queued -> sending -> sent | bounced | failed | skipped. A row is marked `sending` (committed)
just before the point of no return (the SMTP final dot, or the outbox rename) and `sent`
as soon as the relay says 250. A run killed in between leaves `sending`: the relay may or
may not have the message. By default the next run sends it again (at-least-once), because a
missed urgent alert is worse than a duplicate, and the duplicate carries the same Message-ID,
which mail clients use to fold copies together. The window is one round trip per process,
so at most one message per kill can be doubled; with `in_doubt = "skip"` it is recorded as
failed instead (at-most-once). The outbox transport has no such window: a resend overwrites.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote, urlsplit

from publisher.config import Config
from publisher.locking import exclusive
from publisher.mail import envelope_sender
from publisher.subscribers import Subscriber, SubscriberList, connect, transaction
from publisher.tokens import UNSUBSCRIBE, load_secret, make_token
from publisher.transports import (
    DeliveryError,
    Rejected,
    Transient,
    Transport,
    make_transport,
)

log = logging.getLogger("publisher.delivery")

WEEK = re.compile(r"\d{4}-W(0[1-9]|[1-4]\d|5[0-3])")
MAX_BACKOFF = 300.0
# This many refusals in a row means the relay, not the recipients, is the problem (a relay
# refusing to relay for us says "550" too): stop, and undo the streak's bounces and failures.
REFUSAL_STREAK = 10

LEDGER = """
CREATE TABLE IF NOT EXISTS mailings (
    key TEXT PRIMARY KEY,
    list TEXT NOT NULL,
    started TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mailing_messages (
    mailing TEXT NOT NULL REFERENCES mailings(key),
    language TEXT NOT NULL,
    eml BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (mailing, language)
);
CREATE TABLE IF NOT EXISTS deliveries (
    mailing TEXT NOT NULL REFERENCES mailings(key),
    subscriber TEXT NOT NULL,
    language TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'bounced', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    changed TEXT,
    PRIMARY KEY (mailing, subscriber)
);
"""


DISCREET = "+discreet"  # the message key of a language's discreet twin, e.g. en+discreet


@dataclass(frozen=True)
class Mailing:
    """One thing to send: the weekly issue of a week or one alert, as built .eml bytes per language."""

    key: str  # ledger key: weekly/2026-W47 or alert/<translation key>
    list: str  # the subscriber list it goes to: weekly or alerts
    messages: dict[str, bytes]


@dataclass
class SendReport:
    """What one run did; nothing in it names an address."""

    mailing: str
    transport: str
    dry_run: bool = False
    queued: int = 0  # rows this run set out to send
    sent: int = 0
    already_sent: int = 0
    bounced: int = 0
    failed: int = 0
    deferred: int = 0  # left queued after retries; the next run tries again
    skipped: int = 0  # unsubscribed or removed since the mailing started
    in_doubt: int = 0  # found `sending` from a killed run
    without_message: int = 0  # no message in their language nor the default one
    languages: Counter = field(default_factory=Counter)

    @property
    def complete(self) -> bool:
        return self.deferred == 0

    def summary(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        count = self.queued if self.dry_run else self.sent
        parts = [f"{self.mailing}: {verb} {count} via {self.transport}"]
        if self.languages:
            parts.append("(" + ", ".join(f"{lang} {n}" for lang, n in sorted(self.languages.items())) + ")")
        for name in ("already_sent", "bounced", "failed", "deferred", "skipped", "in_doubt", "without_message"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name.replace('_', ' ')} {value}")
        return "; ".join([" ".join(parts[:2])] + parts[2:]) if self.languages else "; ".join(parts)


@dataclass(frozen=True)
class Policy:
    """Retry and pacing settings, from config; tests shrink the backoff."""

    retries: int
    backoff: float
    rate: float
    resend_in_doubt: bool

    @classmethod
    def of(cls, config: Config) -> "Policy":
        d = config.delivery
        return cls(d.retries, d.backoff, d.rate, d.in_doubt == "resend")


def find_mailing(config: Config, target: str, now: datetime) -> Mailing:
    """Return the built weekly issue (2026-W47) or alert (slug or key) named by `target`."""
    output = config.path("output")
    if WEEK.fullmatch(target):
        found = {lang: output / "newsletter" / lang / target / "issue.eml" for lang in config.languages}
        messages = _with_discreet_twins({lang: path for lang, path in found.items() if path.is_file()})
        if not messages:
            raise DeliveryError(f"there is no built issue {target} (output/newsletter/LANG/{target}/issue.eml); "
                                "run `publisher build` first, or check the week")
        return Mailing(f"weekly/{target}", "weekly", messages)
    return _find_alert(config, target, now)


def _find_alert(config: Config, target: str, now: datetime) -> Mailing:
    from publisher.build import load_site
    from publisher.newsletter import alert_dir
    from publisher.templates import Templates

    site = load_site(config, Templates(config), now)
    matches = [e for e in site.entries if e.type == "alert" and target in (e.slug, e.key)]
    if not matches:
        hidden = [e for e in site.hidden if target in (e.slug, e.key)]
        if hidden:
            raise DeliveryError(f"the alert {target!r} is a draft or embargoed at {now.isoformat()}; it cannot be sent yet")
        raise DeliveryError(f"{target!r} is neither a week such as 2026-W47 nor the slug or key of a published alert")
    keys = {e.translation_key for e in matches}
    if len(keys) > 1:
        raise DeliveryError(f"{target!r} names {len(keys)} different alerts; give the 'key' from their front matter")
    key = keys.pop()
    group = [e for e in site.entries if e.type == "alert" and e.translation_key == key]
    if any(e.retracted for e in group):
        raise DeliveryError(f"the alert {target!r} was retracted; it will not be sent")
    paths = {e.lang: config.path("output") / alert_dir(e) / "alert.eml" for e in group}
    messages = _with_discreet_twins({lang: path for lang, path in paths.items() if path.is_file()})
    if not messages:
        raise DeliveryError(f"the alert {target!r} has no built email (output/alerts/LANG/SLUG/alert.eml); "
                            "run `publisher build` first")
    return Mailing(f"alert/{key}", "alerts", messages)


def _with_discreet_twins(paths: dict[str, Path]) -> dict[str, bytes]:
    """Read each language's message and, beside it, its discreet twin (issue-discreet.eml).

    The twin's preview text, title and masthead are neutral too, which swapped headers alone
    cannot give: a lock screen shows the preview text.
    """
    messages = {}
    for lang, path in paths.items():
        messages[lang] = path.read_bytes()
        twin = path.with_name(f"{path.stem}-discreet{path.suffix}")
        if twin.is_file():
            messages[lang + DISCREET] = twin.read_bytes()
    return messages


def send(config: Config, target: str, now: datetime, *, dry_run: bool = False, transport: Transport | None = None,
         clock: Callable[[], datetime] | None = None, progress: Callable[[int, int], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> SendReport:
    """Send a mailing to each active subscriber of its list who has not had it yet; safe to re-run."""
    secret = load_secret(config)
    mailing = find_mailing(config, target, now)
    clock = clock or (lambda: now)
    transport = transport or make_transport(config)
    with _exclusive(config, mailing.key), _ledger(config) as db:
        if mailing.list == "weekly" and not dry_run:
            _freeze_issues(config, target, now)
        run = _Run(config, db, mailing, secret, transport, Policy.of(config), clock, sleep, progress)
        try:
            return run.dry_run() if dry_run else run.send()
        finally:
            transport.close()


def _freeze_issues(config: Config, week: str, now: datetime) -> None:
    """Record the week's issues as sent before the first message goes, so their entries never move."""
    from publisher.build import load_site
    from publisher.issues import issues_of, record_sent
    from publisher.templates import Templates

    site = load_site(config, Templates(config), now)
    for issue in issues_of(site):
        if issue.week == week and not issue.sent:
            record_sent(config, issue, now)


def personalise(eml: bytes, subscriber: Subscriber, token: str, config: Config) -> bytes:
    """Return the built message addressed to one subscriber: To, their unsubscribe links, discreet names."""
    return BuiltMessage(eml, config).to(subscriber, token)


class BuiltMessage:
    """A built .eml read once, then addressed to each recipient in turn.

    Only header fields change; the body stays byte for byte as built, so a DKIM signature
    added by the relay covers exactly what the build made.
    """

    def __init__(self, eml: bytes, config: Config):
        eml = eml if b"\r\n" in eml else eml.replace(b"\n", b"\r\n")
        head, separator, self.body = eml.partition(b"\r\n\r\n")
        if not separator:
            raise DeliveryError("a built message has no header/body separator; rebuild it")
        parsed = BytesHeaderParser(policy=policy.default).parsebytes(head + b"\r\n\r\n")
        for name in ("Cc", "Bcc", "Resent-To"):
            if parsed[name] is not None:
                raise DeliveryError(f"a built message has a {name} header; delivery adds exactly one recipient")
        if parsed["From"] is None or len(parsed["From"].addresses) != 1:
            raise DeliveryError("a built message needs exactly one From address")
        self.config = config
        self.fields = [(name.lower(), raw) for name, raw in _fields(head) if name.lower() != "to"]
        self.sender = parsed["From"].addresses[0].addr_spec
        list_id = re.search(r"<[^<>\s]+>", str(parsed["List-Id"] or ""))
        # Clients show the List-Id phrase ("Our Organisation <weekly...>"); discreet copies keep only the id.
        self.bare_list_id = f"List-Id: {list_id.group(0)}\r\n".encode("ascii", "replace") if list_id else None
        self.https, self.mailto = _unsubscribe_targets(parsed, config)
        self.discreet: dict[str, dict[str, bytes]] = {}

    def to(self, subscriber: Subscriber, token: str) -> bytes:
        replace = {"list-unsubscribe": self._unsubscribe(token)}
        if subscriber.discreet:
            replace.update(self._discreet(subscriber.language))
        lines: list[bytes] = []
        for name, raw in self.fields:
            lines.append(replace.get(name, raw))
            if name == "from":
                lines.append(b"To: " + subscriber.address.encode("ascii") + b"\r\n")
        return b"".join(lines) + b"\r\n" + self.body

    def _unsubscribe(self, token: str) -> bytes:
        """Return List-Unsubscribe with the token in the https URL (RFC 8058) and the mailto subject (RFC 2369)."""
        joiner = "&" if urlsplit(self.https).query else "?"
        # Written by hand, folded between the URIs: a generic folder would RFC 2047-encode a long URL.
        value = f"List-Unsubscribe: <{self.https}{joiner}token={token}>"
        if self.mailto:
            value += f",\r\n <mailto:{self.mailto}?subject={quote('unsubscribe ' + token)}>"
        return value.encode("ascii") + b"\r\n"

    def _discreet(self, lang: str) -> dict[str, bytes]:
        if lang not in self.discreet:
            n = self.config.newsletter
            name = self.config.text(n.discreet_from_name, lang)
            self.discreet[lang] = {
                "from": _fold("From", str(Address(display_name=name, addr_spec=self.sender))),
                "subject": _fold("Subject", self.config.text(n.discreet_subject, lang)),
            }
            if self.bare_list_id:
                self.discreet[lang]["list-id"] = self.bare_list_id
        return self.discreet[lang]


def _unsubscribe_targets(parsed, config: Config) -> tuple[str, str]:
    """Return the generic https URL and mailto address the build put in List-Unsubscribe."""
    raw = str(parsed["List-Unsubscribe"] or "")
    uris = re.findall(r"<([^<>]+)>", raw)
    https = next((u for u in uris if u.lower().startswith("https:")), config.newsletter.unsubscribe_url)
    mailto = next((u[7:].split("?")[0] for u in uris if u.lower().startswith("mailto:")), config.newsletter.unsubscribe_mailto)
    if not https:
        raise DeliveryError("a built message has no https List-Unsubscribe URL; set [newsletter] unsubscribe_url and rebuild")
    if not re.fullmatch(r"https://[\x21-\x7e]+", https) or not re.fullmatch(r"[\x21-\x7e]*", mailto):
        raise DeliveryError("the List-Unsubscribe URL of a built message is not plain ASCII; rebuild it")
    return https, mailto


def _fields(head: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield each header field as (name, raw bytes with its folded lines and final CRLF)."""
    name, raw = "", b""
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and name:
            raw += line + b"\r\n"
            continue
        if name:
            yield name, raw
        name, raw = line.split(b":", 1)[0].decode("ascii", "replace").strip(), line + b"\r\n"
    if name:
        yield name, raw


def _fold(name: str, value: str) -> bytes:
    """Return one header field folded and, where needed, RFC 2047 encoded, ending in CRLF."""
    header = policy.SMTP.header_factory(name, value)
    return header.fold(policy=policy.SMTP).encode("ascii")


class _Run:
    """One pass over the ledger for one mailing."""

    def __init__(self, config: Config, db: sqlite3.Connection, mailing: Mailing, secret: bytes,
                 transport: Transport, policy_: Policy, clock, sleep, progress):
        self.config, self.db, self.mailing, self.secret = config, db, mailing, secret
        self.transport, self.policy, self.clock, self.sleep = transport, policy_, clock, sleep
        self.progress = progress or (lambda done, total: None)
        self.subscribers = SubscriberList(config, db)
        self.report = SendReport(mailing.key, transport.name)
        self.sender = envelope_sender(config)
        # Pacing protects a relay's limits; writing files to the outbox needs none.
        self.pacer = _Pacer(policy_.rate if transport.name == "smtp" else 0, sleep)
        self.built: dict[str, BuiltMessage] = {}
        self.streak: list[tuple[str, bool]] = []  # (subscriber id, suppressed) of consecutive refusals

    def dry_run(self) -> SendReport:
        """Count and build every message that would go, touching neither the ledger nor the transport."""
        self.report.dry_run = True
        messages = {**self.mailing.messages, **self._snapshot_read()}
        done = {row[0] for row in self.db.execute(
            "SELECT subscriber FROM deliveries WHERE mailing = ? AND status != 'queued'", (self.mailing.key,))}
        for subscriber in self._audience():
            lang = self._language(subscriber, messages)
            if subscriber.id in done:
                self.report.already_sent += 1
            elif lang is None:
                self.report.without_message += 1
            else:
                self._built(lang, messages).to(subscriber, self._token(subscriber))
                self.report.queued += 1
                self.report.languages[lang.removesuffix(DISCREET)] += 1
        return self.report

    def send(self) -> SendReport:
        messages = self._snapshot()
        self._recover_in_doubt()
        self._enqueue(messages)
        pending = [row["subscriber"] for row in self.db.execute(
            "SELECT subscriber FROM deliveries WHERE mailing = ? AND status = 'queued' ORDER BY rowid", (self.mailing.key,))]
        self.report.already_sent = self.db.execute(
            "SELECT count(*) FROM deliveries WHERE mailing = ? AND status = 'sent'", (self.mailing.key,)).fetchone()[0]
        self.report.queued = len(pending)
        log.info("%s: %d to send, %d already sent, via %s", self.mailing.key, len(pending),
                 self.report.already_sent, self.transport.name)
        for done, subscriber_id in enumerate(pending, 1):
            self._deliver_one(subscriber_id, messages)
            self.progress(done, len(pending))
        return self.report

    def _deliver_one(self, subscriber_id: str, messages: dict[str, bytes]) -> None:
        row = self.db.execute("SELECT language FROM deliveries WHERE mailing = ? AND subscriber = ?",
                              (self.mailing.key, subscriber_id)).fetchone()
        subscriber = self.subscribers.get(subscriber_id)
        if subscriber is None or subscriber.status != "active" or self.mailing.list not in subscriber.lists:
            self._mark(subscriber_id, "skipped", "no longer subscribed")
            self.report.skipped += 1
            return
        lang = row["language"]
        data = self._built(lang, messages).to(subscriber, self._token(subscriber))
        for attempt in range(1, self.policy.retries + 2):
            self.pacer.wait()
            try:
                self.transport.deliver(self.sender, subscriber.address, data, _outbox_name(self.mailing.key, subscriber_id),
                                       lambda: self._mark(subscriber_id, "sending", "", attempt=True))
            except Transient as failure:
                self.report.in_doubt += failure.in_doubt
                if failure.in_doubt and not self.policy.resend_in_doubt:
                    self._mark(subscriber_id, "failed", f"in doubt, not resent: {failure.detail}")
                    self.report.failed += 1
                    return
                self._mark(subscriber_id, "queued", failure.detail)
                if attempt > self.policy.retries:
                    return self._give_up(subscriber, failure)
                delay = min(self.policy.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
                log.warning("%s: %s; retry %d of %d in %.1fs", subscriber.masked, failure.detail, attempt,
                            self.policy.retries, delay)
                self.sleep(delay)
                continue
            except Rejected as refusal:
                self._reject(subscriber, refusal)
                return
            self.streak.clear()
            self._mark(subscriber_id, "sent", "")
            self.report.sent += 1
            self.report.languages[lang.removesuffix(DISCREET)] += 1
            return

    def _give_up(self, subscriber: Subscriber, failure: Transient) -> None:
        if failure.stage in ("connect", "mail"):
            raise DeliveryError(f"the relay is unavailable ({failure.detail}); {self.report.sent} sent in this run, "
                                "the rest stay queued: run the same command again to resume")
        log.warning("%s: deferred after %d retries: %s", subscriber.masked, self.policy.retries, failure.detail)
        self.report.deferred += 1

    def _reject(self, subscriber: Subscriber, refusal: Rejected) -> None:
        self.streak.append((subscriber.id, refusal.hard))
        if len(self.streak) >= REFUSAL_STREAK:
            self._undo_streak()
            raise DeliveryError(f"the relay refused {REFUSAL_STREAK} recipients in a row (last: {refusal.detail}); "
                                "this looks like a relay or sender problem, so none of them was recorded as bounced: "
                                "fix it and run the same command again")
        if refusal.hard:
            self._mark(subscriber.id, "bounced", refusal.detail)
            self.subscribers.set_status(subscriber.id, "bounced", self.clock())
            self.report.bounced += 1
            log.warning("%s: hard bounce, address suppressed: %s", subscriber.masked, refusal.detail)
        else:
            self._mark(subscriber.id, "failed", refusal.detail)
            self.report.failed += 1
            log.warning("%s: refused: %s", subscriber.masked, refusal.detail)

    def _undo_streak(self) -> None:
        """Put a streak of refusals back in the queue and reactivate the addresses it suppressed."""
        with transaction(self.db):
            for subscriber_id, suppressed in self.streak:
                self._mark(subscriber_id, "queued", "refused while the relay refused everyone; to be retried")
                if suppressed:
                    self.db.execute("UPDATE subscribers SET status = 'active' WHERE id = ? AND status = 'bounced'",
                                    (subscriber_id,))
        self.report.bounced -= sum(suppressed for _, suppressed in self.streak[:-1])
        self.report.failed -= sum(not suppressed for _, suppressed in self.streak[:-1])

    def _mark(self, subscriber_id: str, status: str, detail: str, attempt: bool = False) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = ?, detail = ?, changed = ?, attempts = attempts + ? WHERE mailing = ? AND subscriber = ?",
            (status, detail, self.clock().isoformat(), int(attempt), self.mailing.key, subscriber_id))

    def _snapshot(self) -> dict[str, bytes]:
        """Freeze the message per language at first send, so a resumed run sends what the first one did."""
        with transaction(self.db):
            self.db.execute("INSERT OR IGNORE INTO mailings (key, list, started) VALUES (?, ?, ?)",
                            (self.mailing.key, self.mailing.list, self.clock().isoformat()))
            for lang, eml in self.mailing.messages.items():
                self.db.execute("INSERT OR IGNORE INTO mailing_messages (mailing, language, eml, sha256) VALUES (?, ?, ?, ?)",
                                (self.mailing.key, lang, eml, hashlib.sha256(eml).hexdigest()))
        stored = self._snapshot_read()
        changed = sorted(lang for lang, eml in self.mailing.messages.items() if stored.get(lang) != eml)
        if changed:
            log.warning("%s: the built message changed since sending started (%s); the rest get the first version",
                        self.mailing.key, ", ".join(changed))
        return stored

    def _snapshot_read(self) -> dict[str, bytes]:
        return {row[0]: row[1] for row in self.db.execute(
            "SELECT language, eml FROM mailing_messages WHERE mailing = ?", (self.mailing.key,))}

    def _recover_in_doubt(self) -> None:
        """Settle rows a killed run left at the point of no return: resend (default) or record as failed."""
        with transaction(self.db):
            count = self.db.execute("SELECT count(*) FROM deliveries WHERE mailing = ? AND status = 'sending'",
                                    (self.mailing.key,)).fetchone()[0]
            if self.policy.resend_in_doubt:
                self.db.execute("UPDATE deliveries SET status = 'queued', detail = 'in doubt after an interrupted run; resent'"
                                " WHERE mailing = ? AND status = 'sending'", (self.mailing.key,))
            else:
                self.db.execute("UPDATE deliveries SET status = 'failed', detail = 'in doubt after an interrupted run; not resent'"
                                " WHERE mailing = ? AND status = 'sending'", (self.mailing.key,))
        if count:
            log.warning("%s: %d message(s) were in flight when a previous run stopped; %s", self.mailing.key, count,
                        "sending them again" if self.policy.resend_in_doubt else "recorded as failed, not resent")
        self.report.in_doubt = count

    def _enqueue(self, messages: dict[str, bytes]) -> None:
        """Queue every active subscriber of the list who has no row yet, with the language they will get."""
        rows = []
        for subscriber in self._audience():
            lang = self._language(subscriber, messages)
            if lang is None:
                self.report.without_message += 1
            else:
                rows.append((self.mailing.key, subscriber.id, lang))
        with transaction(self.db):
            self.db.executemany("INSERT OR IGNORE INTO deliveries (mailing, subscriber, language, status) VALUES (?, ?, ?, 'queued')", rows)

    def _audience(self) -> Iterator[Subscriber]:
        column = "weekly" if self.mailing.list == "weekly" else "alerts"
        for row in self.db.execute(f"SELECT id FROM subscribers WHERE status = 'active' AND {column} = 1 ORDER BY rowid"):
            yield self.subscribers.get(row[0])

    def _language(self, subscriber: Subscriber, messages: dict[str, bytes]) -> str | None:
        """Return the message this subscriber gets: their language's, else the default; discreet twin if asked."""
        for lang in (subscriber.language, self.config.default_language):
            if lang in messages:
                twin = lang + DISCREET
                return twin if subscriber.discreet and twin in messages else lang
        return None

    def _built(self, lang: str, messages: dict[str, bytes]) -> BuiltMessage:
        if lang not in self.built:
            self.built[lang] = BuiltMessage(messages[lang], self.config)
        return self.built[lang]

    def _token(self, subscriber: Subscriber) -> str:
        return make_token(self.secret, UNSUBSCRIBE, subscriber.id)


class _Pacer:
    """Space messages at most `rate` per second (0: no limit)."""

    def __init__(self, rate: float, sleep: Callable[[float], None]):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.sleep = sleep
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def _outbox_name(mailing: str, subscriber_id: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', mailing)}/{subscriber_id}.eml"


@contextmanager
def _ledger(config: Config) -> Iterator[sqlite3.Connection]:
    db = connect(config)
    try:
        db.executescript(LEDGER)
        yield db
    finally:
        db.close()


@contextmanager
def _exclusive(config: Config, key: str) -> Iterator[None]:
    """Hold a lock per mailing so two runs never send it side by side; the kernel drops it if we die."""
    folder = config.path("state") / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"send-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
    with ExitStack() as held:
        try:
            held.enter_context(exclusive(path, wait=False))
        except BlockingIOError:
            raise DeliveryError(f"another `publisher send` of {key} is running; wait for it to finish") from None
        yield


def ledger_counts(config: Config, key: str) -> dict[str, int]:
    """Return how many deliveries of a mailing are in each status (for reports and tests)."""
    with _ledger(config) as db:
        return dict(db.execute("SELECT status, count(*) FROM deliveries WHERE mailing = ? GROUP BY status", (key,)).fetchall())


def progress_reporter(stream) -> Callable[[int, int], None]:
    """Return a progress callback: a redrawn bar on a terminal, a log line every 10% otherwise."""
    tty = stream.isatty()

    def report(done: int, total: int) -> None:
        if tty:
            width = 30
            filled = width * done // total
            stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done == total:
                stream.write("\n")
            stream.flush()
        elif done == total or done % max(1, total // 10) == 0:
            log.info("progress: %d of %d handled", done, total)

    return report
