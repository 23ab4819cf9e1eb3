"""The built .eml files: MIME structure, headers, line rules, SMTP round trip, golden copies."""

from __future__ import annotations

import os
import re
import smtplib
import socket
from datetime import timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from email_site import NOW, WEEK, make_site

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("PUBLISHER_REGENERATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the email test site once; return (site, {path: bytes}) of its emails."""
    site = make_site(tmp_path_factory.mktemp("mail") / "site")
    site.build(NOW)
    tree = site.tree()
    return site, {p: b for p, b in tree.items() if p.endswith(".eml")}


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def test_every_message_is_multipart_alternative_text_then_html(built):
    _, emls = built
    assert len(emls) == 14  # W45 and W47 issues in en, W47 in az and ru; three alerts; each also discreet
    for path, raw in emls.items():
        message = parse(raw)
        assert message.get_content_type() == "multipart/alternative", path
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"], path
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        assert all(p["Content-Transfer-Encoding"] in ("7bit", "quoted-printable", "base64") for p in parts)
        assert message.get_body(("html",)).get_content().lstrip().startswith("<!DOCTYPE html>")


def test_headers_are_complete_and_carry_no_recipient(built):
    _, emls = built
    for path, raw in emls.items():
        message = parse(raw)
        for name in ("To", "Cc", "Bcc"):
            assert message[name] is None, (path, name)
        assert message["From"].addresses[0].addr_spec == "newsletter@news.example.org"
        assert message["Reply-To"].addresses[0].addr_spec == "newsletter@news.example.org"
        assert re.fullmatch(r"<[^<>@\s]+@news\.example\.org>", message["Message-ID"])
        assert parsedate_to_datetime(message["Date"]).utcoffset() == timedelta(hours=4)
        assert re.search(r"<(weekly|alerts)\.news\.example\.org>$", str(message["List-Id"]))
        assert str(message["List-Unsubscribe"]).strip() == \
            "<https://news.example.org/unsubscribe>, <mailto:unsubscribe@news.example.org>"
        assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        assert message["Subject"] and "\n" not in str(message["Subject"])
        assert message["MIME-Version"] == "1.0"
        assert message["Content-Language"] in ("en", "az", "ru")


def test_issue_and_alert_headers_match_what_they_are(built):
    _, emls = built
    issue = parse(emls[f"newsletter/az/{WEEK}/issue.eml"])
    assert str(issue["Subject"]) == "№ 1: Basqınları dərhal dayandırın"
    assert str(issue["From"]) == "Test Alyansı <newsletter@news.example.org>"
    assert parsedate_to_datetime(issue["Date"]).isoformat() == "2026-11-23T09:00:00+04:00"
    assert str(issue["List-Id"]).endswith("<weekly.news.example.org>")
    alert = parse(emls["alerts/en/stop-the-raids/alert.eml"])
    assert str(alert["Subject"]) == "URGENT: Stop the raids now"
    assert parsedate_to_datetime(alert["Date"]).isoformat() == "2026-11-18T12:00:00+04:00"
    assert str(alert["List-Id"]).endswith("<alerts.news.example.org>")
    assert str(parse(emls["alerts/az/stop-the-raids/alert.eml"])["Subject"]) == \
        "TƏCİLİ: Basqınları dərhal dayandırın"
    ids = [parse(raw)["Message-ID"] for raw in emls.values()]
    assert len(set(ids)) == len(ids)


def test_the_discreet_variant_shows_nothing_at_a_glance(built):
    _, emls = built
    for path, raw in emls.items():
        if not path.endswith("-discreet.eml"):
            continue
        everyday = parse(emls[path.replace("-discreet.eml", ".eml")])
        message = parse(raw)
        lang = path.split("/")[1]
        neutral = {"en": ("Weekly digest", "Your weekly digest"), "az": ("Həftəlik icmal", "Həftəlik icmalınız"),
                   "ru": ("Еженедельный обзор", "Ваш еженедельный обзор")}[lang]
        assert (message["From"].addresses[0].display_name, str(message["Subject"])) == neutral, path
        assert message["From"].addresses[0].addr_spec == everyday["From"].addresses[0].addr_spec
        assert message["Message-ID"] != everyday["Message-ID"]
        assert re.fullmatch(r"<[0-9a-f]{16}@news\.example\.org>", message["Message-ID"])  # says nothing
        assert str(message["List-Unsubscribe"]) == str(everyday["List-Unsubscribe"])
        html = message.get_body(("html",)).get_content()
        title = re.search(r"<title>(.*?)</title>", html).group(1)
        preheader = re.search(r'class="preheader"[^>]*>([^\u034f<]*)', html).group(1)
        assert title == preheader == neutral[1], path
        first = message.get_body(("plain",)).get_content().splitlines()[0]
        assert first == neutral[0]
        for words in ("Test Alliance", "Test Alyansı", "Тестовый альянс"):
            assert words not in html.split('class="footer"')[0], path  # only the footer names the site
        assert everyday.get_body(("html",)).get_content().count('class="entry-title"') == html.count(
            'class="entry-title"')  # the same news


def test_wire_format_is_crlf_ascii_headers_and_short_lines(built):
    _, emls = built
    for path, raw in emls.items():
        assert b"\n" not in raw.replace(b"\r\n", b""), f"{path}: bare LF"
        assert b"\r" not in raw.replace(b"\r\n", b""), f"{path}: bare CR"
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998, path
        head = raw.split(b"\r\n\r\n", 1)[0]
        head.decode("ascii")  # non-ASCII only as RFC 2047 encoded words
        assert all(len(line) <= 78 for line in raw.split(b"\r\n")), path
    assert b"=?utf-8?" in emls["alerts/az/stop-the-raids/alert.eml"].split(b"\r\n\r\n")[0]


def test_plain_text_reads_at_72_columns_with_numbered_links(built):
    _, emls = built
    for path, raw in emls.items():
        text = parse(raw).get_body(("plain",)).get_content()
        lines = text.splitlines()
        start = len(lines)
        while start and re.fullmatch(r"\[\d+\] \S+", lines[start - 1]):
            start -= 1
        body, references = "\n".join(lines[:start]), "\n".join(lines[start:])
        for line in body.splitlines():
            assert len(line) <= 72 or " " not in line.strip(), (path, line)
        marks = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
        listed = [int(n) for n in re.findall(r"^\[(\d+)\] \S+$", references, re.M)]
        assert listed == list(range(1, len(listed) + 1)) and marks == set(listed), path
        assert "<" not in body, path  # no markup leaked into the text
    text = parse(emls[f"newsletter/en/{WEEK}/issue.eml"]).get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "- Officers arrived at 23:00." in text
    assert "statement of the lawyers [" in text
    assert re.search(r"^\[\d+\] https://example\.org/statement$", text, re.M)


def test_builds_are_byte_identical(built, tmp_path):
    site, emls = built
    again = make_site(tmp_path / "again")
    again.build(NOW)
    assert {p: b for p, b in again.tree().items() if p.endswith(".eml")} == emls


def test_a_hostile_title_cannot_add_headers(site):
    site.write("content/a.md", '---\ntitle: "Raid\\r\\nBcc: everyone@example.org\\r\\n\\r\\n<b>x</b>"\n'
                               'type: update\ndate: 2026-11-17T10:00:00+04:00\n---\n\nBody.\n')
    site.build(NOW)
    raw = site.tree()[f"newsletter/en/{WEEK}/issue.eml"]
    message = parse(raw)
    assert message["Bcc"] is None
    assert str(message["Subject"]) == "No. 1: Raid Bcc: everyone@example.org <b>x</b>"


class _Sink:
    """Keep every message the loopback SMTP server receives, as raw bytes."""

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_message_arrives_through_smtp_exactly_as_built(built):
    _, emls = built
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            for path, raw in sorted(emls.items()):
                client.sendmail("bounces@news.example.org", ["reader@example.net"], raw)
    finally:
        controller.stop()
    assert [r[2] for r in sink.received] == [raw for _, raw in sorted(emls.items())]
    for _, _, raw in sink.received:
        assert parse(raw).get_body(("html",)).get_content()


@pytest.mark.parametrize("name, path", [
    ("issue", f"newsletter/en/{WEEK}/issue"),
    ("alert", "alerts/az/stop-the-raids/alert"),
])
def test_golden_copies(built, name, path):
    """Compare one issue and one alert with reviewed copies (PUBLISHER_REGENERATE_GOLDEN=1 rewrites them)."""
    site, _ = built
    folder = path.rsplit("/", 1)[0]
    files = {
        f"{name}.eml": (site.output / f"{path}.eml").read_bytes(),
        f"{name}.txt": (site.output / f"{path}.txt").read_bytes(),
        f"{name}.html": parse((site.output / f"{path}.eml").read_bytes()).get_body(("html",)).get_content()
                        .encode("utf-8"),
        f"{name}-web.html": (site.output / folder / "index.html").read_bytes(),
    }
    for filename, data in files.items():
        golden = GOLDEN / filename
        if REGENERATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_bytes(data)
        assert golden.exists(), f"missing {golden}; run with PUBLISHER_REGENERATE_GOLDEN=1 and review the diff"
        assert data == golden.read_bytes(), f"{filename} differs from {golden}; review, then regenerate"
