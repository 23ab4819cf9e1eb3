"""When things are due: weekly slots, embargo and expiry moments, retry backoff. Pure functions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable

from publisher.config import WEEKDAYS, Config
from publisher.content import Entry


@dataclass(frozen=True)
class Slot:
    """One weekly send time: keyed by its local date, so a repeated wall-clock hour is one slot."""

    day: date
    at: datetime  # the instant, UTC

    @property
    def key(self) -> str:
        return f"weekly:{self.day.isoformat()}"


def slot_on(config: Config, day: date) -> Slot:
    """Return the slot of a local date at the configured time.

    fold=0 picks the first of a repeated hour (autumn) and, for a time the clocks skip
    (spring), the instant it would have been before the change, as APScheduler's
    CronTrigger does, so the wake-up and the ledger agree.
    """
    hour, minute = (int(part) for part in config.newsletter.time.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=config.tz)
    return Slot(day, local.astimezone(timezone.utc))


def slots_between(config: Config, start: datetime, end: datetime) -> list[Slot]:
    """Return the weekly slots with start < slot <= end, oldest first."""
    weekday = WEEKDAYS.index(config.newsletter.weekday.lower())
    first = start.astimezone(config.tz).date() - timedelta(days=1)
    last = end.astimezone(config.tz).date() + timedelta(days=1)
    found = []
    day = first + timedelta(days=(weekday - first.weekday()) % 7)
    while day <= last:
        slot = slot_on(config, day)
        if start < slot.at <= end:
            found.append(slot)
        day += timedelta(days=7)
    return found


def latest_slot(config: Config, now: datetime) -> Slot:
    """Return the most recent weekly slot at or before `now`."""
    return slots_between(config, now - timedelta(days=8), now)[-1]


def cron_fields(config: Config) -> dict[str, str]:
    """Return the CronTrigger fields of the weekly slot."""
    hour, minute = config.newsletter.time.split(":")
    return {"day_of_week": config.newsletter.weekday.lower()[:3], "hour": str(int(hour)), "minute": str(int(minute))}


def moments(entry: Entry) -> list[datetime]:
    """Return the instants at which an entry's published form changes."""
    found = [entry.date, entry.expires, entry.updated, entry.retracted.date if entry.retracted else None]
    if entry.action:
        found.append(entry.action.deadline)
    return [m for m in found if m is not None]


def future_moments(entries: Iterable[Entry], now: datetime) -> list[datetime]:
    """Return the distinct instants after `now` at which the site changes, soonest first."""
    return sorted({m.astimezone(timezone.utc) for e in entries if not e.draft for m in moments(e) if m > now})


def publication_state(sources: str, entries: Iterable[Entry], now: datetime, slot: Slot) -> str:
    """Return a key that changes exactly when a build at `now` would differ from the last one."""
    passed = sorted({m.astimezone(timezone.utc).isoformat() for e in entries for m in moments(e) if m <= now})
    digest = hashlib.sha256("\n".join([sources, slot.key, *passed]).encode("utf-8")).hexdigest()
    return digest


def backoff(config: Config, attempts: int) -> timedelta:
    """Return the wait before retry number `attempts` (1, 2, ...): doubling, capped."""
    seconds = config.schedule.retry_seconds * 2 ** min(max(attempts - 1, 0), 20)
    return timedelta(seconds=min(seconds, config.schedule.retry_max_seconds))
