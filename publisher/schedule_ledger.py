"""The scheduler's ledger in SQLite: what was published and delivered, and when.

This ledger, not APScheduler's job store, decides what is owed: the job store only says
when to wake up. Every row is written in its own committed transaction before the step it
guards moves on, so a process killed at any moment finds on restart exactly which steps
finished.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from publisher.problems import EditorError, Problem

LEDGER_NAME = "schedule.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS published (
    entry_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    type TEXT NOT NULL,
    date TEXT NOT NULL,
    published_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    done_at TEXT,
    skipped TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    last_error TEXT
);
"""


@dataclass(frozen=True)
class Delivery:
    """One thing to deliver once: a week's issues (`issue:2026-W47`) or an alert (`alert:KEY`)."""

    key: str
    kind: str
    target: str  # what `publisher send` is given: the week, or the alert's key or slug
    started_at: datetime
    done_at: datetime | None
    skipped: str | None
    attempts: int
    retry_at: datetime | None
    last_error: str | None

    @property
    def finished(self) -> bool:
        return self.done_at is not None


class Ledger:
    """Read and write the scheduler's ledger in the site's state folder."""

    def __init__(self, state: Path):
        state.mkdir(parents=True, exist_ok=True)
        self.path = state / LEDGER_NAME
        # isolation_level=None: each statement commits at once, so nothing waits in memory.
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            # The ledger says what is owed: never start over without the operator knowing.
            raise EditorError([Problem(str(self.path), 1, (
                f"the scheduler's ledger cannot be read ({exc}); restore it from a backup, or move it "
                "away to start a new one (the send ledger still keeps anyone from getting a message twice)"))]) from None

    def close(self) -> None:
        self.db.close()

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                        (key, value, value))

    def since(self, now: datetime) -> datetime:
        """Return when this site was first scheduled; nothing dated earlier is owed."""
        self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('since', ?)", (_iso(now),))
        return _read(self.get("since"))

    def record_published(self, entries: Iterable, now: datetime) -> list[str]:
        """Note entries seen published for the first time; return their paths."""
        new = []
        for entry in entries:
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO published (entry_id, path, type, date, published_at) VALUES (?, ?, ?, ?, ?)",
                (entry.id, entry.path, entry.type, _iso(entry.date), _iso(now)),
            )
            if cursor.rowcount:
                new.append(entry.path)
        return new

    def delivery(self, key: str) -> Delivery | None:
        row = self.db.execute(
            "SELECT key, kind, target, started_at, done_at, skipped, attempts, retry_at, last_error FROM deliveries "
            "WHERE key = ?", (key,),
        ).fetchone()
        if row is None:
            return None
        return Delivery(row[0], row[1], row[2], _read(row[3]), _read(row[4]), row[5], row[6], _read(row[7]), row[8])

    def start(self, key: str, kind: str, target: str, now: datetime) -> Delivery:
        """Record that a delivery is under way (before anything is sent) and count the attempt."""
        self.db.execute(
            "INSERT INTO deliveries (key, kind, target, started_at, attempts) VALUES (?, ?, ?, ?, 1) "
            "ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1, retry_at = NULL",
            (key, kind, target, _iso(now)),
        )
        return self.delivery(key)

    def finish(self, key: str, now: datetime) -> None:
        self.db.execute("UPDATE deliveries SET done_at = ?, retry_at = NULL, last_error = NULL WHERE key = ?",
                        (_iso(now), key))

    def skip(self, key: str, kind: str, target: str, now: datetime, reason: str) -> None:
        """Record that something owed will never be delivered, and why (for the operator to review)."""
        self.db.execute(
            "INSERT INTO deliveries (key, kind, target, started_at, done_at, skipped) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET done_at = excluded.done_at, skipped = excluded.skipped",
            (key, kind, target, _iso(now), _iso(now), reason),
        )

    def fail(self, key: str, retry_at: datetime, error: str) -> None:
        self.db.execute("UPDATE deliveries SET retry_at = ?, last_error = ? WHERE key = ?", (_iso(retry_at), error, key))

    def unfinished(self) -> list[Delivery]:
        keys = [row[0] for row in self.db.execute("SELECT key FROM deliveries WHERE done_at IS NULL ORDER BY key")]
        return [self.delivery(key) for key in keys]

    def deliveries(self) -> list[Delivery]:
        keys = [row[0] for row in self.db.execute("SELECT key FROM deliveries ORDER BY started_at, key")]
        return [self.delivery(key) for key in keys]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _read(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
