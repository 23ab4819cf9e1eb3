"""Built messages and subscriber lists for the delivery tests, made with the stdlib email package."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from conftest import CONFIG, ScratchSite

SECRET = "test-secret-" + "x" * 40
SUBJECTS = {"en": "Weekly news 47", "az": "Həftəlik xəbərlər 47: ə ğ ı İ ş ç ö ü", "ru": "Новости недели 47"}
BODIES = {"en": "Hello, readers.", "az": "Salam, oxucular: ə ğ ı İ ş ç ö ü.", "ru": "Здравствуйте, читатели."}
WEEK = "2026-W47"


def built_message(lang: str, subject: str | None = None, message_id: str = "issue-2026-W47") -> bytes:
    """Return a message as the build makes it: multipart/alternative, CRLF, UTF-8, no To."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(display_name="Test Alliance", addr_spec="newsletter@news.example.org")
    message["Reply-To"] = "team@news.example.org"
    message["Subject"] = subject or SUBJECTS[lang]
    message["Date"] = format_datetime(datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    message["Message-ID"] = f"<{message_id}.{lang}@news.example.org>"
    message["List-Id"] = "<weekly.news.example.org>"
    message["List-Unsubscribe"] = "<https://news.example.org/unsubscribe>, <mailto:unsubscribe@news.example.org>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    body = BODIES.get(lang, "Hello")
    message.set_content(body + "\n\n.a line that starts with a dot\n", charset="utf-8")
    message.add_alternative(f"<!DOCTYPE html><html lang=\"{lang}\"><body><p>{body}</p></body></html>\n",
                            subtype="html", charset="utf-8")
    message.set_boundary("=_boundary_" + lang)
    return bytes(message)


def write_issue(site: ScratchSite, languages=("en", "az", "ru"), week: str = WEEK) -> None:
    for lang in languages:
        site.write(f"output/newsletter/{lang}/{week}/issue.eml", built_message(lang))


def smtp_config(port: int, **delivery) -> str:
    settings = {"rate": 0, "backoff": 0.001, "retries": 3, **delivery}
    lines = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in settings.items())
    return f"{CONFIG}\n[delivery]\n{lines}\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout = 5\n"


def address(number: int, tag: str = "reader") -> str:
    return f"{tag}{number:05d}@example.org"


def subscriber_csv(site: ScratchSite, count: int, tag: str = "reader", discreet_every: int = 10) -> Path:
    """Write a CSV of `count` subscribers spread over en, az and ru; every tenth is discreet."""
    rows = ["address,language,lists,discreet"]
    for n in range(count):
        lang = ("en", "az", "ru")[n % 3]
        rows.append(f"{address(n, tag)},{lang},weekly alerts,{'yes' if n % discreet_every == 0 else 'no'}")
    return site.write("subscribers.csv", "\n".join(rows) + "\n")


def language_of(n: int) -> str:
    return ("en", "az", "ru")[n % 3]


def unique_tag() -> str:
    """Return a random mailbox prefix, so a leak search cannot match anything but this test's addresses."""
    return "leak" + base64.b32encode(os.urandom(10)).decode().lower().rstrip("=")
