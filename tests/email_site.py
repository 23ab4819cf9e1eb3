"""A scratch site for the email tests: one week of news in three languages, an alert, a campaign."""

from __future__ import annotations

import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

from conftest import CONFIG, ScratchSite

# Monday 23 November 2026, 09:05 in Baku: the issue of week 47 is due, the alerts are out.
NOW = datetime(2026, 11, 23, 5, 5, tzinfo=timezone.utc)
WEEK = "2026-W47"

ALERT_ACTION = """
  label: Write to the Minister
  url: https://example.org/take-action/minister
  deadline: 2026-11-30T23:59:00+04:00
  targets:
    - name: Vilayat Eyvazov
      title: Minister of Internal Affairs
      address: "7 Azerbaijan Avenue, Baku AZ1005"
  asks:
    - Release everyone held because of who they are.
    - Stop the raids."""

ALERT_ACTION_AZ = """
  label: Nazirə yazın
  url: https://example.org/take-action/minister
  deadline: 2026-11-30T23:59:00+04:00
  targets:
    - name: Vilayət Eyvazov
      title: Daxili İşlər naziri
  asks:
    - Kimliyinə görə saxlanılan hər kəsi azad edin.
    - Basqınları dayandırın."""

CAMPAIGN_ACTION = """
  label: Sign the letter
  url: https://example.org/sign"""

BODY = """\
Police in Baku detained **twelve people** at a private party on Tuesday. Read the
[statement of the lawyers](https://example.org/statement) and our [earlier report](/en/2026/11/earlier/).

## What happened

- Officers arrived at 23:00.
- Phones were taken and searched.
- Three people are still held.

| Day | Event |
|-----|-------|
| Tuesday | Raid |
| Wednesday | Hearings |

> Nobody should be arrested for who they are.

An unbreakable address: https://example.org/a/very/long/path/that/does/not/break/anywhere/at/all/in/a/narrow/window

![The street where it happened](/images/street.png)

Write to us at [team@news.example.org](mailto:team@news.example.org).[^1]

[^1]: We answer within a day.
"""


def png(width: int = 4, height: int = 3) -> bytes:
    """Return a small valid PNG for an entry to show."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x20\x60\xa0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def populate(site: ScratchSite) -> ScratchSite:
    """Write a week (2026-W47) of entries in en, az and ru, plus an older, already closed alert."""
    site.write("content/images/street.png", png())
    site.entry("earlier.md", title="Earlier report", date="2026-11-03T10:00:00+04:00", body="An earlier report.")
    site.entry("raid.md", title="Police raid a private party in Baku", date="2026-11-17T10:00:00+04:00",
               summary="Twelve people were detained; three are still held.", body=BODY, tags="[police, baku]")
    site.entry("stop-the-raids.md", title="Stop the raids now", type="alert", date="2026-11-18T12:00:00+04:00",
               summary="Three people are still held. Write to the Minister today.", key="stop-the-raids",
               expires="2026-12-01T00:00:00+04:00", action=ALERT_ACTION,
               body="Three people detained on Tuesday are still in custody.\n\nWrite today.")
    site.entry("stop-the-raids.az.md", title="Basqınları dərhal dayandırın", type="alert",
               date="2026-11-18T12:00:00+04:00", key="stop-the-raids", expires="2026-12-01T00:00:00+04:00",
               summary="Üç nəfər hələ də saxlanılır. Bu gün nazirə yazın.", action=ALERT_ACTION_AZ,
               body="Çərşənbə axşamı saxlanılan üç nəfər hələ də həbsdədir: ə ğ ı İ ş ç ö ü.")
    site.entry("letter.md", title="Sign our letter to the Prosecutor", type="campaign",
               date="2026-11-19T10:00:00+04:00", action=CAMPAIGN_ACTION, body="Add your name to our letter.")
    site.entry("raid.ru.md", title="Полиция разогнала вечеринку в Баку", date="2026-11-17T10:00:00+04:00",
               body="Полиция задержала двенадцать человек. Подробнее — в [заявлении](https://example.org/statement).")
    site.entry("old-alert.md", title="An old alert", type="alert", date="2026-11-04T10:00:00+04:00",
               expires="2026-11-08T00:00:00+04:00", action=CAMPAIGN_ACTION, body="It is over.")  # closed before its issue
    return site


def make_site(root: Path) -> ScratchSite:
    """Return a populated scratch site in `root` (for module-scoped fixtures)."""
    site = ScratchSite(root)
    site.write("publisher.toml", CONFIG)
    return populate(site)
