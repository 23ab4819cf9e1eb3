"""Ready-to-send MIME messages: multipart/alternative, list headers, byte for byte reproducible.

Delivery (publisher/delivery.py) adds the one recipient and per-recipient unsubscribe
links by replacing header fields; the body parts are sent exactly as built here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from publisher.config import Config

# CRLF, and bodies kept 7-bit clean (quoted-printable or base64 where needed) so every
# relay accepts them and no line is longer than 78 characters, far under RFC 5322's 998.
POLICY = policy.SMTP.clone(cte_type="7bit")


@dataclass(frozen=True)
class Envelope:
    """The header fields of one built message (before delivery adds To)."""

    subject: str
    from_name: str
    date: datetime
    message_id: str
    list_id: str
    list_name: str
    lang: str


def compose(config: Config, envelope: Envelope, text: str, html: str) -> bytes:
    """Return the message as CRLF bytes: text/plain first, then text/html, both UTF-8."""
    n = config.newsletter
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(display_name=envelope.from_name, addr_spec=from_address(config))
    message["Reply-To"] = Address(addr_spec=n.reply_to or from_address(config))
    message["Subject"] = " ".join(envelope.subject.split())
    message["Date"] = format_datetime(envelope.date.astimezone(config.tz))
    message["Message-ID"] = envelope.message_id
    message["List-Id"] = f"{' '.join(envelope.list_name.split())} <{envelope.list_id}>"
    message["List-Unsubscribe"] = list_unsubscribe(config)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    message.set_boundary(boundary(envelope.message_id, text, html))
    message["Content-Language"] = envelope.lang  # after the body: set_content drops Content-* fields
    return message.as_bytes(policy=POLICY)


def list_unsubscribe(config: Config) -> str:
    """Return the generic List-Unsubscribe value; delivery puts each recipient's token in it."""
    value = f"<{unsubscribe_url(config)}>"
    if config.newsletter.unsubscribe_mailto:
        value += f", <mailto:{config.newsletter.unsubscribe_mailto}>"
    return value


def unsubscribe_url(config: Config) -> str:
    """Return the https unsubscribe endpoint: configured, or /unsubscribe of the subscription app."""
    if config.newsletter.unsubscribe_url:
        return config.newsletter.unsubscribe_url
    subscriptions = getattr(config, "subscriptions", None)  # the [subscriptions] app, when configured
    return (getattr(subscriptions, "url", "") or config.base_url) + "unsubscribe"


def from_address(config: Config) -> str:
    return config.newsletter.from_address or f"newsletter@{config.host}"


def envelope_sender(config: Config) -> str:
    """Return the SMTP envelope sender, where bounces go."""
    return config.smtp.envelope_from or from_address(config)


def message_id(config: Config, kind: str, *parts: str) -> str:
    """Return a Message-ID on our domain, the same for every build of the same issue or alert."""
    digest = hashlib.sha256("\0".join((config.tag_authority, kind, *parts)).encode("utf-8")).hexdigest()[:16]
    readable = [p for p in (kind, *parts) if p.isascii() and p.replace("-", "").isalnum()]
    return f"<{'.'.join([*readable, digest])}@{config.host}>"


def boundary(message_id: str, *bodies: str) -> str:
    """Return a MIME boundary derived from the message, so builds are byte-identical.

    '=' followed by '_' never occurs in quoted-printable or base64 text, and the hash of
    the bodies keeps it out of any 7-bit part.
    """
    digest = hashlib.sha256("\0".join((message_id, *bodies)).encode("utf-8")).hexdigest()[:32]
    return f"=_{digest}"
