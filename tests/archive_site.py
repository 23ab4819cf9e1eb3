"""A scratch site rich enough to exercise feeds and the archive, written into the `site` fixture."""

from __future__ import annotations

import struct
import zlib

from conftest import ScratchSite

# Every kind of entry the feeds and archive must handle, in three languages.
ALERT_ID = "tag:news.example.org,2026-11-20:en/stop-the-raids"
PINNED_ID = "tag:news.example.org,2026-10-01:en/pinned-report"


def png(width: int = 2, height: int = 2) -> bytes:
    """Return a small valid PNG, so image links point at a real file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80\x40\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def populate(site: ScratchSite) -> ScratchSite:
    """Write updates, a campaign, an alert, a correction, a retraction, translations and tags."""
    site.write("content/images/2026/crowd.png", png())
    site.entry("2026/first-update.md", title="First update", date="2026-09-01T10:00:00+04:00",
               summary="The first update.", tags="[police, baku]",
               body="Intro paragraph.\n\n# A top heading in the body\n\n#### A deep heading\n\n"
                    "See [the report](/en/2026/10/pinned-report/) and ![a crowd](/images/2026/crowd.png).\n\n"
                    "| Place | Count |\n|:--|--:|\n| Baku | 12 |\n")
    site.entry("2026/pinned-report.md", title="Pinned report", date="2026-10-01T10:00:00+04:00",
               id=f'"{PINNED_ID}"', key="report", tags="[police, полиция]", image="/images/2026/crowd.png",
               image_alt="A crowd", body="The report body.")
    site.entry("2026/pinned-report.ru.md", title="Доклад", date="2026-10-02T10:00:00+04:00", key="report",
               tags="[полиция]", body="Текст доклада.")
    site.entry("2026/pinned-report.az.md", title="Hesabat", date="2026-10-02T11:00:00+04:00", key="report",
               body="Hesabatın mətni.")
    site.entry("2026/corrected.md", title="Corrected story", date="2026-10-10T10:00:00+04:00",
               updated="2026-10-12T09:00:00+04:00", correction="We fixed the number of people detained.",
               body="There were 12 people detained.[^1]\n\n[^1]: Counted by lawyers.")
    site.entry("2026/withdrawn.md", title="Withdrawn story", date="2026-10-15T10:00:00+04:00",
               retracted="{date: 2026-10-16T08:00:00+04:00, reason: 'A source was unreliable.'}",
               body="The secret original text that must vanish.")
    site.entry("2026/old-campaign.md", title="Old campaign", type="campaign", date="2026-08-01T10:00:00+04:00",
               expires="2026-09-01T00:00:00+04:00",
               action="{label: 'Sign the letter', url: 'https://act.example.net/letter'}",
               body="A campaign that has ended.")
    site.entry("2026/stop-the-raids.md", title="Stop the raids now", type="alert", date="2026-11-20T10:00:00+04:00",
               id=f'"{ALERT_ID}"', expires="2026-12-20T00:00:00+04:00", tags="[police]",
               action="{label: 'Write to the minister', url: 'https://act.example.net/minister', "
                      "deadline: 2026-12-01T00:00:00+04:00, targets: [{name: 'The Minister', title: 'Minister of "
                      "Internal Affairs', address: '7 Example Street, Baku'}], asks: ['Release everyone detained.']}",
               body="Police have detained people again.")
    site.entry("2026/draft.md", title="A draft", date="2026-11-01T10:00:00+04:00", draft="true",
               body="Draft text that must not leak.")
    site.entry("2027/embargoed.md", title="Embargoed", date="2027-01-01T10:00:00+04:00",
               body="Embargoed text that must not leak.")
    return site
