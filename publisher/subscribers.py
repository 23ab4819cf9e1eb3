"""The subscriber list in SQLite: who gets what, in which language; addresses never leave it unmasked."""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from publisher.config import Config
from publisher.problems import EditorError, Problem

DATABASE = "subscribers.sqlite3"
LISTS = ("weekly", "alerts")
STATUSES = ("pending", "active", "unsubscribed", "bounced")
CSV_FIELDS = ("address", "language", "lists", "status", "discreet", "created", "changed")
POSITIONAL = ("address", "language", "lists", "discreet", "status")

# Dot-atom local part (RFC 5322 3.2.3) and a host name; non-ASCII local parts would need
# SMTPUTF8, which many relays refuse, so they are turned away with a clear message instead.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    language TEXT NOT NULL,
    weekly INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
    discreet INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    changed TEXT NOT NULL,
    confirmed TEXT
);
"""


class BadAddress(ValueError):
    """An address we cannot or will not send to."""


@dataclass(frozen=True)
class Subscriber:
    """One person on the list; `id` is opaque and is what tokens and the ledger name."""

    id: str
    address: str
    language: str
    lists: tuple[str, ...]
    status: str
    discreet: bool
    created: str
    changed: str
    confirmed: str | None = None

    @property
    def masked(self) -> str:
        return mask(self.address)


def normalise_address(text: str) -> str:
    """Return the address in the one form we store and send to; raise BadAddress if it is not one."""
    address = text.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    if len(address) > 254 or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in address):
        raise BadAddress("not a single email address")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise BadAddress("not an email address (no '@')")
    if not local.isascii():
        raise BadAddress("non-ASCII before the '@' is not supported by most mail relays")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise BadAddress("the part before the '@' is not a valid mailbox name")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BadAddress("the domain is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise BadAddress("the domain is not a valid host name")
    # Mailbox names are case-insensitive in practice everywhere we send; one case avoids duplicates.
    return f"{local.lower()}@{ascii_domain}"


def mask(address: str) -> str:
    """Return an address as logs may show it: a***@e***.org."""
    local, _, domain = address.rpartition("@")
    name, dot, tld = domain.rpartition(".")
    if not dot:
        name, tld = domain, ""
    return f"{local[:1]}***@{name[:1]}***{dot}{tld}"


def mask_addresses(text: str) -> str:
    """Mask every address-like string, e.g. in an SMTP server's reply, before it is stored or logged."""
    return _ADDRESS_LIKE.sub(lambda m: mask(m.group(0)), text)


def database_path(config: Config) -> Path:
    return config.path("state") / DATABASE


def connect(config: Config) -> sqlite3.Connection:
    """Open the subscriber database (created private to this user) with the ledger tables beside it."""
    path = database_path(config)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keep_out_of_git(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    # WAL survives a killed process without losing a commit; NORMAL skips an fsync per commit,
    # so a power cut can forget the last few sends, which then go again (see docs/delivery.md).
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db


PRIVATE = ("subscribers.sqlite3*", "outbox/", "locks/")


def keep_out_of_git(state: Path) -> None:
    """List the subscriber files in state/.gitignore, whatever the site's own .gitignore says."""
    ignore = state / ".gitignore"
    try:
        lines = ignore.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    missing = [pattern for pattern in PRIVATE if pattern not in lines]
    if missing:
        header = [] if lines else ["# Subscriber data: never commit it (written by publisher)."]
        ignore.write_text("\n".join(lines + header + missing) + "\n", encoding="utf-8")


MAX_IMPORT_BYTES = 256 * 2**20  # a million addresses fit in far less; /dev/zero would not end


class SubscriberList:
    """Add, change and read subscribers; every write is one transaction."""

    def __init__(self, config: Config, db: sqlite3.Connection | None = None):
        self.config = config
        self.db = db or connect(config)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "SubscriberList":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, address: str, now: datetime, language: str | None = None, lists: Iterable[str] = LISTS,
            status: str = "active", discreet: bool = False) -> Subscriber:
        """Add an address, or update its settings; never reactivate one that unsubscribed or bounced."""
        row = self._row_values(normalise_address(address), language, lists, status, discreet)
        with transaction(self.db):
            return self._upsert(row, now)

    def import_csv(self, path: Path, now: datetime, status: str = "active") -> tuple[int, int]:
        """Import a CSV file (address[,language,lists,discreet,status]); all or nothing; return (added, updated)."""
        rows, problems = self._read_csv(path, status)
        if problems:
            raise EditorError(problems)
        added = updated = 0
        with transaction(self.db):
            for row in rows:
                existed = self._find(row["address"]) is not None
                self._upsert(row, now)
                added, updated = added + (not existed), updated + existed
        return added, updated

    def remove(self, address: str) -> bool:
        """Delete an address and everything it was subscribed to; return whether it was there."""
        with transaction(self.db):
            cursor = self.db.execute("DELETE FROM subscribers WHERE address = ?", (normalise_address(address),))
        return cursor.rowcount > 0

    def find(self, address: str) -> Subscriber | None:
        row = self._find(normalise_address(address))
        return _subscriber(row) if row else None

    def get(self, subscriber_id: str) -> Subscriber | None:
        row = self.db.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
        return _subscriber(row) if row else None

    def all(self) -> Iterator[Subscriber]:
        for row in self.db.execute("SELECT * FROM subscribers ORDER BY created, address"):
            yield _subscriber(row)

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status").fetchall())

    def set_status(self, subscriber_id: str, status: str, now: datetime) -> bool:
        """Move a subscriber to a status; confirming only ever moves a pending one to active."""
        stamp = now.isoformat()
        with transaction(self.db):
            if status == "active":
                cursor = self.db.execute(
                    "UPDATE subscribers SET status = 'active', changed = ?, confirmed = ? WHERE id = ? AND status = 'pending'",
                    (stamp, stamp, subscriber_id))
            else:
                cursor = self.db.execute("UPDATE subscribers SET status = ?, changed = ? WHERE id = ? AND status != ?",
                                         (status, stamp, subscriber_id, status))
        return cursor.rowcount > 0

    def export_csv(self, stream: TextIO) -> int:
        """Write every subscriber as CSV (the import format plus dates); return how many."""
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        count = 0
        for s in self.all():
            writer.writerow([_spreadsheet_safe(s.address), s.language, " ".join(s.lists), s.status, "yes" if s.discreet else "no",
                             s.created, s.changed])
            count += 1
        return count

    def _find(self, address: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM subscribers WHERE address = ?", (address,)).fetchone()

    def _row_values(self, address: str, language: str | None, lists: Iterable[str], status: str,
                    discreet: bool) -> dict:
        language = language or self.config.default_language
        lists = tuple(dict.fromkeys(lists))
        if language not in self.config.languages:
            raise BadAddress(f"language '{language}' is not one of the site's languages ({', '.join(self.config.languages)})")
        if not lists or any(name not in LISTS for name in lists):
            raise BadAddress(f"lists must be some of: {', '.join(LISTS)}")
        if status not in STATUSES:
            raise BadAddress(f"status must be one of: {', '.join(STATUSES)}")
        return {"address": address, "language": language, "weekly": "weekly" in lists, "alerts": "alerts" in lists,
                "status": status, "discreet": bool(discreet)}

    def _upsert(self, row: dict, now: datetime) -> Subscriber:
        stamp = now.isoformat()
        old = self._find(row["address"])
        if old is None:
            confirmed = stamp if row["status"] == "active" else None
            self.db.execute(
                "INSERT INTO subscribers (id, address, language, weekly, alerts, status, discreet, created, changed, confirmed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id(), row["address"], row["language"], row["weekly"], row["alerts"], row["status"],
                 row["discreet"], stamp, stamp, confirmed))
        else:
            # Someone who unsubscribed or bounced stays so: only they can come back, through double opt-in.
            status = old["status"] if old["status"] in ("unsubscribed", "bounced") else row["status"]
            if old["status"] == "active" and status == "pending":
                status = "active"
            self.db.execute(
                "UPDATE subscribers SET language = ?, weekly = ?, alerts = ?, status = ?, discreet = ?, changed = ?"
                " WHERE id = ?",
                (row["language"], row["weekly"], row["alerts"], status, row["discreet"], stamp, old["id"]))
        return _subscriber(self._find(row["address"]))

    def _read_csv(self, path: Path, status: str) -> tuple[list[dict], list[Problem]]:
        rel = str(path)
        try:
            if not path.is_file() or path.stat().st_size > MAX_IMPORT_BYTES:
                return [], [Problem(rel, 1, f"not a regular file under {MAX_IMPORT_BYTES // 2**20} MB; "
                                            "give the CSV file itself")]
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            return [], [Problem(rel, 1, f"cannot read the file: {exc}")]
        reader = csv.reader(io.StringIO(text, newline=""))
        rows: list[dict] = []
        problems: list[Problem] = []
        header: list[str] | None = None
        positional = False
        seen: dict[str, int] = {}
        try:
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if header is None and not positional:
                    header = _csv_header(record)
                    if header:
                        unknown = [name for name in header if name not in CSV_FIELDS]
                        if unknown:
                            problems.append(Problem(rel, line, f"unknown column '{unknown[0]}' (known: {', '.join(CSV_FIELDS)})"))
                        if "address" not in header:
                            problems.append(Problem(rel, line, "the header has no 'address' column"))
                            return [], problems
                        continue
                    positional = True
                # Without a header, columns are read in the documented order: address, language, lists, discreet, status.
                names = POSITIONAL if positional else header
                if len(record) > len(names):
                    problems.append(Problem(rel, line, f"{len(record)} columns, but only {len(names)} are known"))
                    continue
                fields = dict(zip(names, (cell.strip() for cell in record)))
                try:
                    row = self._csv_row(fields, status)
                except BadAddress as exc:
                    problems.append(Problem(rel, line, str(exc)))
                    continue
                if row["address"] in seen:
                    problems.append(Problem(rel, line, f"this address is already on line {seen[row['address']]}"))
                    continue
                seen[row["address"]] = line
                rows.append(row)
        except csv.Error as exc:
            problems.append(Problem(rel, reader.line_num, f"CSV syntax error: {exc}"))
        return rows, problems

    def _csv_row(self, fields: dict[str, str], status: str) -> dict:
        address = normalise_address(_unescape_cell(fields.get("address", "")))
        lists = re.split(r"[\s,;|]+", fields.get("lists") or " ".join(LISTS))
        discreet = (fields.get("discreet") or "no").lower()
        if discreet not in ("yes", "no", "true", "false", "1", "0"):
            raise BadAddress("discreet must be yes or no")
        return self._row_values(address, fields.get("language") or None, [x for x in lists if x],
                                fields.get("status") or status, discreet in ("yes", "true", "1"))


class _Transaction:
    """BEGIN IMMEDIATE .. COMMIT, rolled back on any error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def transaction(db: sqlite3.Connection) -> _Transaction:
    """Return a context manager running its block as one immediate transaction."""
    return _Transaction(db)


def new_id() -> str:
    """Return a fresh opaque subscriber id: random, so it says nothing about the address."""
    return secrets.token_urlsafe(16)


def _subscriber(row: sqlite3.Row) -> Subscriber:
    lists = tuple(name for name in LISTS if row[name])
    return Subscriber(row["id"], row["address"], row["language"], lists, row["status"], bool(row["discreet"]),
                      row["created"], row["changed"], row["confirmed"])


def _spreadsheet_safe(cell: str) -> str:
    """Quote a cell a spreadsheet would run as a formula (=1+2@x.org is a valid address)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell


def _unescape_cell(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@") else cell


def _csv_header(record: list[str]) -> list[str] | None:
    """Return the column names if the first row is a header (it has no '@'), else None."""
    cells = [cell.strip().lower() for cell in record]
    return None if any("@" in cell for cell in cells) else cells


def edit_subscriber(root: Path, action: str, now: datetime, **options) -> str:
    """Run one `publisher subscribers` change and return what to tell the operator (addresses masked)."""
    from publisher.config import load_config

    config = load_config(root)
    with SubscriberList(config) as subscribers:
        try:
            if action == "add":
                subscriber = subscribers.add(options["address"], now, options["language"], options["lists"],
                                             options["status"], options["discreet"])
                return f"{subscriber.masked}: {subscriber.status}, {subscriber.language}, {' + '.join(subscriber.lists)}"
            if action == "import":
                added, updated = subscribers.import_csv(options["path"], now, options["status"])
                return f"imported {added} new and updated {updated} subscribers"
            if action == "remove":
                address = options["address"]
                return f"{mask(normalise_address(address))}: {'removed' if subscribers.remove(address) else 'was not on the list'}"
        except BadAddress as exc:
            raise EditorError([Problem("command line", 1, f"{exc}")]) from None
    raise ValueError(action)


def listing(root: Path, status: str | None = None, unmasked: bool = False) -> Iterator[str]:
    """Yield one line per subscriber (masked unless asked), then the counts per status."""
    from publisher.config import load_config

    with SubscriberList(load_config(root)) as subscribers:
        for s in subscribers.all():
            if status is None or s.status == status:
                flags = " discreet" if s.discreet else ""
                yield f"{s.address if unmasked else s.masked}\t{s.status}\t{s.language}\t{','.join(s.lists)}{flags}"
        counts = subscribers.counts()
    yield "# " + ", ".join(f"{name} {counts.get(name, 0)}" for name in STATUSES)


def export(root: Path, target: Path | None, stdout: TextIO) -> str:
    """Write the list as CSV to a private file (never inside a published folder) or to stdout."""
    from publisher.config import load_config

    config = load_config(root)
    if target is not None:
        resolved = target.resolve()
        for name in ("content", "output", "templates"):
            if resolved.is_relative_to(config.path(name).resolve()):
                raise EditorError([Problem("command line", 1, f"refusing to write the subscriber list under {name}/, "
                                                               "which is published; choose a private place")])
    with SubscriberList(config) as subscribers:
        if target is None:
            count = subscribers.export_csv(stdout)
            return f"exported {count} subscribers"
        descriptor = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            count = subscribers.export_csv(handle)
    return f"exported {count} subscribers to {target}"
