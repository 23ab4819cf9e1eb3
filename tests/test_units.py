"""Unit keys: the bytes a key is made of, whichever way a value reaches it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from publisher.content import Action, Entry
from publisher.units import Keys

NOW = datetime(2026, 11, 22, 12, tzinfo=timezone(timedelta(hours=4)))


def keys_at(now: datetime) -> Keys:
    keys = object.__new__(Keys)  # no site: only the part of a key made from its values
    keys.now, keys.base, keys.reads_clock = now, b"base", False
    return keys


def entry(fingerprint: bytes, expires: datetime | None = None) -> Entry:
    return Entry(path="content/a.md", slug="a", title="A", type="campaign", date=NOW - timedelta(days=1), lang="en",
                 id="tag:x,2026:a", markdown="", body_line=5, expires=expires,
                 action=Action("Sign", "https://example.org/"), fingerprint=fingerprint)


def test_entries_and_words_in_a_tuple_key_as_they_would_alone():
    """Entries and strings inside tuples are added inline; the bytes are those of the general rule."""
    first, second = entry(b"1" * 20), entry(b"2" * 20, expires=NOW)  # the second's action has closed
    expected = (b"base" + b"\x01(" + b"\x01S5:entry" + b"\x01E" + b"1" * 20 + b"o"
                + b"\x01(" + b"\x01E" + b"2" * 20 + b"c" + b"\x01S5:caf\xc3\xa9" + b"\x01None" + b"\x01)" + b"\x01)")
    assert keys_at(NOW).key("entry", first, (second, "café", None)) == hashlib.blake2b(expected, digest_size=20).digest()


def test_a_key_changes_with_an_entry_and_with_its_action_closing():
    keys = keys_at(NOW)
    base = keys.key("feed", (entry(b"1" * 20),))
    assert keys.key("feed", (entry(b"3" * 20),)) != base
    assert keys.key("feed", (entry(b"1" * 20, expires=NOW),)) != base
    assert keys.key("feed", [entry(b"1" * 20)]) == base  # a list keys as the tuple it holds
    assert keys.key("feed", ("ab",)) != keys.key("feed", ("a", "b"))


def test_dicts_dataclasses_and_leaves_key_in_order():
    """Dict items by sorted name, a dataclass's fields in order, each leaf marked with its kind."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Link:
        href: str
        number: int

    when = datetime(2026, 11, 2, tzinfo=timezone.utc)
    value = ({"next": None, "count": 2, "first": True}, [Link("a/", 3)], b"\x00\x01", when, 1.5)
    expected = (b"base" + b"\x01(" + b"\x01S4:page" + b"\x01("
                + b"\x01{" + b"\x01S5:count" + b"\x012" + b"\x01S5:first" + b"\x01True" + b"\x01S4:next" + b"\x01None"
                + b"\x01}"
                + b"\x01(" + b"\x01C" + Link.__qualname__.encode() + b"\x01S2:a/" + b"\x013" + b"\x01)"
                + b"\x01B2:\x00\x01" + b"\x01D2026-11-02T00:00:00+00:00" + b"\x011.5" + b"\x01)" + b"\x01)")
    assert keys_at(NOW).key("page", value) == hashlib.blake2b(expected, digest_size=20).digest()


def test_a_value_of_no_known_kind_is_refused():
    import pytest

    with pytest.raises(TypeError):
        keys_at(NOW).key("page", {1, 2})


def test_entry_pages_and_content_files_key_as_the_general_rule_would():
    """Keys.entry_unit and Keys.file_unit write their bytes out for speed; they must be unit()'s bytes."""
    from publisher.units import NoKeys

    keys = keys_at(NOW)
    first, second, third = entry(b"1" * 20), entry(b"2" * 20, expires=NOW), entry(b"3" * 20)
    for translations in ((), (second,), (second, third)):
        assert keys.entry_unit(None, first, translations).key == keys.key("entry", first, translations)
    for name, digest in (("images/a.png", b"d" * 16), ("bilder/ü ö.jpg", b"missing"), ("x\udcff.pdf", b"")):
        assert keys.file_unit(None, name, digest).key == keys.key("file", name, digest)
    assert NoKeys().entry_unit(None, first, ()).key == NoKeys().file_unit(None, "a.png", b"d").key == b""
