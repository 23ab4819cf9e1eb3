"""The hand-written MIME of publisher.mail: whatever goes in, the email package reads back the same."""

from __future__ import annotations

import base64
import binascii
import random
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.header import decode_header

import pytest

from conftest import CONFIG
from publisher import mail
from publisher.config import load_config

DATE = datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc)

# Words an editor or a config may put in a subject or a sender name, and the awkward ones.
WORDS = ["Raid", "in", "Baku", "Basqınları", "dərhal", "dayandırın", "İsmayıllı", "Суд", "продлил", "арест",
         "«Радуга»", "№", "14:00", "—", "🏳️‍🌈", "a.b", "Smith,", 'say "no"', "back\\slash", "(note)", "=?utf-8?q?x?=",
         "=", "_", "?", "<b>", "tab\tin", "ctrl\x01", "x" * 90, "ə" * 40]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("mime")
    (root / "publisher.toml").write_text(CONFIG, encoding="utf-8")
    return load_config(root)


def compose(config, subject="Weekly news", from_name="Test Alliance", list_name="Test Alliance",
            text="Text.\n", html="<p>HTML.</p>\n", message_id="<issue.en.2026-W47.0123456789abcdef@news.example.org>"):
    envelope = mail.Envelope(subject=subject, from_name=from_name, date=DATE, message_id=message_id,
                             list_id="weekly.news.example.org", list_name=list_name, lang="en")
    return mail.compose(config, envelope, text, html)


def check_wire_format(raw: bytes) -> None:
    """CRLF only, 7-bit ASCII throughout, header lines within 78 and body lines within 76 characters."""
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    raw.decode("ascii")
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or line.startswith(b"Message-ID: "), line
    for line in body.split(b"\r\n"):
        assert len(line) <= 76 or line.startswith(b"--=_"), line


def rfc2047_phrase(raw: bytes, name: str) -> str:
    """Decode the display name of an address field as RFC 2047 section 6.2 says.

    The email package's address parser puts a space between adjacent encoded-words of a
    phrase, where the RFC (and mail clients) join them; its unstructured parser joins them.
    """
    message = message_from_bytes(raw, policy=policy.compat32)
    phrase = message[name].rsplit("<", 1)[0].strip()
    if phrase.startswith('"'):
        return phrase[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return "".join(part.decode(charset) if charset else part.decode("ascii") if isinstance(part, bytes) else part
                   for part, charset in decode_header(phrase))


def test_the_sample_subjects_read_back_with_every_space(config):
    # The email package's own folding dropped the space at an encoded-word boundary here
    # ("Суд продлиларест"); encoded-words written by hand carry their spaces inside.
    for subject in ["Выпуск № 13: Суд продлил арест Орхан Велиев",
                    "№ 75: Nigar Səfərova işi üzrə iclas yenidən təxirə salındı",
                    "No. 2: Stop the raids now", "URGENT: Stop the raids now", "TƏCİLİ: Basqınları dərhal dayandırın"]:
        raw = compose(config, subject=subject)
        check_wire_format(raw)
        assert str(message_from_bytes(raw, policy=policy.default)["Subject"]) == subject


def test_any_subject_and_sender_name_reads_back_the_same(config):
    rng = random.Random(8)
    for _ in range(400):
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14)))
        name = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        raw = compose(config, subject=subject, from_name=name, list_name=name)
        check_wire_format(raw)
        message = message_from_bytes(raw, policy=policy.default)
        assert str(message["Subject"]) == " ".join(subject.split()), raw
        sender = message["From"].addresses
        assert len(sender) == 1 and sender[0].addr_spec == "newsletter@news.example.org", raw
        assert rfc2047_phrase(raw, "From") == " ".join(name.split()), raw
        assert str(message["List-Id"]).endswith(" <weekly.news.example.org>")
        assert message["To"] is None and message["Bcc"] is None  # no value can add a field


def test_plain_values_stay_readable(config):
    raw = compose(config, subject="No. 2: Stop the raids now", from_name="Rainbow Baku Alliance, Inc.")
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    assert "Subject: No. 2: Stop the raids now\r\n" in head
    assert 'From: "Rainbow Baku Alliance, Inc." <newsletter@news.example.org>\r\n' in head
    assert "List-Id: Test Alliance <weekly.news.example.org>\r\n" in head
    assert "=?" not in head


def test_header_fields_come_in_a_fixed_order(config):
    head = compose(config).partition(b"\r\n\r\n")[0].decode("ascii")
    names = [line.split(":")[0] for line in head.split("\r\n") if not line.startswith(" ")]
    assert names == ["From", "Reply-To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
                     "List-Unsubscribe-Post", "MIME-Version", "Content-Type", "Content-Language"]
    message = message_from_bytes(compose(config), policy=policy.default)
    assert str(message["List-Unsubscribe"]) == \
        "<https://news.example.org/unsubscribe>, <mailto:unsubscribe@news.example.org>"
    assert message["Date"].datetime.isoformat() == "2026-11-23T09:00:00+04:00"


@pytest.mark.parametrize("text, encoding", [
    ("Plain ASCII, short lines.\nSecond line.\n", "7bit"),
    ("A line far longer than any mail relay likes to see " * 4 + "\n", "quoted-printable"),
    ("Nov 16 – 22, 2026 · Read on the web [2]\n", "quoted-printable"),  # a few non-ASCII characters
    ("Суд продлил арест Орхан Велиев. " * 20 + "\n", "base64"),
])
def test_bodies_choose_the_encoding_and_read_back_the_same(config, text, encoding):
    html = "<!DOCTYPE html>\n<p style=\"color: #1f2328;\">" + text.strip() + "</p>\n"
    message = message_from_bytes(compose(config, text=text, html=html), policy=policy.default)
    plain, rich = message.get_body(("plain",)), message.get_body(("html",))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_awkward_body_lines_survive_the_encoding(config):
    rng = random.Random(2045)
    pieces = ["word", " ", "  ", "\t", ".", "From ", "=", "=_", "ə", "Ж", "🏳️‍🌈", "\u00a0", "--", "x" * 80, "=?x?="]
    for _ in range(200):
        lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(rng.randint(1, 8))]
        text = "\n".join(lines) + "\n"
        raw = compose(config, text=text, html=text)
        check_wire_format(raw)
        message = message_from_bytes(raw, policy=policy.default)
        assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == text, raw
        assert message.get_body(("html",)).get_content().replace("\r\n", "\n") == text, raw


def test_a_long_message_id_stays_whole(config):
    message_id = f"<alert.ru.{'vnimanie-obyski-u-aktivistov' * 3}.43d1bd51743a566d@news.example.org>"
    raw = compose(config, message_id=message_id)
    assert f"\r\nMessage-ID: {message_id}\r\n".encode("ascii") in raw  # never folded inside the id
    assert message_from_bytes(raw, policy=policy.default)["Message-ID"] == message_id


def test_the_same_input_gives_the_same_bytes(config):
    assert compose(config, subject="Суд продлил арест") == compose(config, subject="Суд продлил арест")



def copy(subject: str, text: str, html: str) -> tuple:
    envelope = mail.Envelope(subject=subject, from_name="Test Alliance", date=DATE, message_id=f"<{subject}@x.org>",
                             list_id="weekly.news.example.org", list_name="Test Alliance", lang="en")
    return envelope, text, html


def test_copies_are_each_the_message_compose_makes(config):
    rng = random.Random(5322)
    lines = ["<p style=\"color: #1f2328;\">Raid in Baku</p>", "Суд продлил арест " * 5, "x" * 90 + "=", "", ".",
             "Basqınları dərhal dayandırın", "plain line", "trailing space ", "\ttab"]
    for _ in range(150):
        shared = [rng.choice(lines) for _ in range(rng.randint(0, 30))]
        bodies = []
        for _ in range(2):
            own = [rng.choice(lines) for _ in range(rng.randint(0, 4))]
            bodies.append("\n".join(own + shared) + rng.choice(["", "\n", "\r\n"]))
        copies = [copy(f"c{i}", body, body.replace("Baku", "Bakı")) for i, body in enumerate(bodies)]
        assert mail.compose_copies(config, copies) == [mail.compose(config, *each) for each in copies]
        for raw, (_, text, _) in zip(mail.compose_copies(config, copies), copies):
            check_wire_format(raw)
            plain = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
            data = b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"
            if plain["Content-Transfer-Encoding"] != "7bit":  # the smaller of the two, byte for byte
                quoted = binascii.b2a_qp(data, istext=True)
                in_base64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
                smaller = "quoted-printable" if len(quoted) <= len(in_base64) else "base64"
                assert plain["Content-Transfer-Encoding"] == smaller
                if smaller == "quoted-printable":
                    assert quoted in raw
            assert plain.get_content().replace("\r\n", "\n") == data.decode("utf-8").replace("\r\n", "\n")
