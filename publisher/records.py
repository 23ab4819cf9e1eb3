"""An entry's metadata as a row of the render cache: marshal for the usual values, pickle for the rest.

A one-edit build at 10,000 entries reads 10,000 rows, and unpickling them was the largest
part of loading the site: pickle rebuilds every value through its class. marshal reads
strings, numbers and tuples at C speed, so a row holds the entry's field values in field
order and only its dates, action and retraction are rebuilt in Python. A value marshal
cannot hold as it is (a time zone of another kind, a subclass of str) sends the whole row
to pickle instead, so every entry comes back exactly as it was stored.

No format number is needed: a change to this module or to Entry changes render.code_version,
and with it every row's key.
"""

from __future__ import annotations

import dataclasses
import marshal
import pickle
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from publisher.content import Action, Entry, Retraction, Target
from publisher.problems import Problem

FIELDS = tuple(item.name for item in dataclasses.fields(Entry))
DATES = frozenset({"date", "updated", "expires"})
MARSHALLED, PICKLED = b"m", b"p"


class Unmarshallable(ValueError):
    """A value the marshal form does not hold: the row is pickled."""


def packed(result: tuple) -> bytes:
    """Return the bytes of a stored (entry, problems, depends)."""
    try:
        return MARSHALLED + marshal.dumps(_marshallable(result))
    except (Unmarshallable, ValueError):  # ValueError: marshal met a type it cannot write
        return PICKLED + pickle.dumps(_plain(result), protocol=5)


def unpacked(meta: bytes) -> tuple | None:
    """Rebuild a stored result; None for a row in any other shape (it is rendered again)."""
    kind, data = meta[:1], meta[1:]
    if kind == MARSHALLED:
        values, problems, depends = marshal.loads(data)
        entry = None if values is None else _entry_of(values, decode=True)
        return entry, [Problem(*p) for p in problems], depends
    if kind == PICKLED:
        values, problems, depends = pickle.loads(data)
        if values is not None and (type(values) is not tuple or len(values) != len(FIELDS)):
            return None
        return (None if values is None else _entry_of(values, decode=False)), problems, depends
    return None


def _plain(result: tuple) -> tuple:
    entry, problems, depends = result
    return (None if entry is None else tuple(getattr(entry, name) for name in FIELDS)), problems, depends


def _marshallable(result: tuple) -> tuple:
    entry, problems, depends = result
    values = None
    if entry is not None:
        values = tuple(_field(name, getattr(entry, name)) for name in FIELDS)
    if any(type(p) is not Problem for p in problems):
        raise Unmarshallable("a problem of another kind")
    return values, tuple((p.path, p.line, p.message, p.warning) for p in problems), depends


def _field(name: str, value: object) -> object:
    if value is None:
        return None
    if name in DATES:
        return _date(value)
    if name == "action":
        if type(value) is not Action or any(type(t) is not Target for t in value.targets):
            raise Unmarshallable("an action of another kind")
        return (value.label, value.url, _date(value.deadline), tuple((t.name, t.title, t.address) for t in value.targets),
                value.asks, value.written_url)
    if name == "retracted":
        if type(value) is not Retraction:
            raise Unmarshallable("a retraction of another kind")
        return _date(value.date), value.reason
    return value  # marshal itself refuses what it cannot write exactly (a str subclass, say)


def _date(value: datetime | None) -> tuple | None:
    """Return (wall-clock fields, zone, fold): the zone a fixed offset in seconds or a zoneinfo key.

    The fields (year to microsecond), not ISO text: datetime() takes them at a third of the
    cost of fromisoformat() and replace(), and a one-edit build reads 10,000 dates.
    """
    if value is None:
        return None
    if type(value) is not datetime:
        raise Unmarshallable("a date of another kind")
    tz = value.tzinfo
    if type(tz) is timezone:
        zone: int | str = int(tz.utcoffset(None).total_seconds())
        if tz != _fixed(zone) or tz.tzname(None) != _fixed(zone).tzname(None):
            raise Unmarshallable("a named or fractional offset")
    elif type(tz) is ZoneInfo and tz.key and ZoneInfo(tz.key) is tz:
        zone = tz.key
    else:
        raise Unmarshallable("a time zone of another kind")
    wall = (value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
    return wall, zone, value.fold


def _undate(value: tuple | None) -> datetime | None:
    if value is None:
        return None
    wall, zone, fold = value
    return datetime(*wall, tzinfo=_fixed(zone) if type(zone) is int else ZoneInfo(zone), fold=fold)


@lru_cache(maxsize=None)
def _fixed(seconds: int) -> timezone:
    # One object per offset. Dates with the same tzinfo object compare by wall time, others by
    # UTC; for a fixed offset the two agree, so sharing it changes no result (only the speed).
    return timezone(timedelta(seconds=seconds))


def _entry_of(values: tuple, decode: bool) -> Entry:
    entry = object.__new__(Entry)
    fields = entry.__dict__  # filled in place, as pickle itself fills a frozen dataclass
    fields.update(zip(FIELDS, values))
    if decode:
        for name in DATES:
            if fields[name] is not None:
                fields[name] = _undate(fields[name])
        action = fields["action"]
        if action is not None:
            label, url, deadline, targets, asks, written_url = action
            fields["action"] = Action(label, url, _undate(deadline), tuple(Target(*t) for t in targets), asks,
                                      written_url)
        retracted = fields["retracted"]
        if retracted is not None:
            fields["retracted"] = Retraction(_undate(retracted[0]), retracted[1])
    return entry
