"""Ready-to-send MIME messages: multipart/alternative, list headers, byte for byte reproducible.

Delivery (publisher/delivery.py) adds the one recipient and per-recipient unsubscribe
links by replacing header fields; the body parts are sent exactly as built here.

Messages are written out by hand, not with the email package: every message has the same
few fields in the same order, and the package's header refolding and pure-Python
quoted-printable encoder cost more than the rest of a newsletter build. The rules kept:
CRLF line endings; header lines of at most 78 characters; non-ASCII (or anything else
unsafe in a header) only in RFC 2047 base64 encoded-words; bodies 7bit when they are ASCII
with short lines, otherwise quoted-printable or base64, whichever is smaller, in lines of
at most 76 characters (RFC 2045). Values outside what these writers know (an address that
is not a plain dot-atom, say) go through the email package's own folding instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.utils import format_datetime

from publisher.config import Config

LINE = 78  # RFC 5322: header lines SHOULD stay within 78 characters
ENCODED_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ATOMS = re.compile(rf"{_ATEXT}( {_ATEXT})*")  # a phrase that needs no quotes
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
_ADDRESS = re.compile(rf"{_ATEXT}(\.{_ATEXT})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_URI = r"<[\x21-\x3b=\x3f-\x7e]+>"  # printable ASCII but space, < and >
_URI_LIST = re.compile(rf"{_URI}(, {_URI})*")


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
    return compose_copies(config, [(envelope, text, html)])[0]


def compose_copies(config: Config, copies: list[tuple[Envelope, str, str]]) -> list[bytes]:
    """Return each copy of one message (everyday, discreet: an envelope, text and HTML) as compose() would.

    The copies' bodies differ in their first lines only; the lines they all end with are
    encoded once.
    """
    texts = [text.encode("utf-8") for _, text, _ in copies]
    htmls = [html.encode("utf-8") for _, _, html in copies]
    return [_message(config, envelope, text, html, text_part, html_part)
            for (envelope, _, _), text, html, text_part, html_part
            in zip(copies, texts, htmls, _parts("plain", texts), _parts("html", htmls))]


def _message(config: Config, envelope: Envelope, text: bytes, html: bytes, text_part: bytes, html_part: bytes) -> bytes:
    separator = _boundary(envelope.message_id.encode("utf-8"), text, html)
    head = "".join([
        _mailbox("From", envelope.from_name, from_address(config)),
        _mailbox("Reply-To", "", config.newsletter.reply_to or from_address(config)),
        _unstructured("Subject", " ".join(envelope.subject.split())),
        f"Date: {format_datetime(envelope.date.astimezone(config.tz))}\r\n",
        _verbatim("Message-ID", envelope.message_id),
        _named("List-Id", envelope.list_name, f"<{envelope.list_id}>"),
        _uri_list("List-Unsubscribe", list_unsubscribe(config)),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative;\r\n boundary="{separator}"\r\n',
        _verbatim("Content-Language", envelope.lang),
    ])
    delimiter = f"--{separator}\r\n".encode("ascii")
    return b"".join([head.encode("ascii"), b"\r\n",
                     delimiter, text_part, b"\r\n",
                     delimiter, html_part, b"\r\n",
                     f"--{separator}--\r\n".encode("ascii")])


def _parts(subtype: str, bodies: list[bytes]) -> list[bytes]:
    """Return UTF-8 text parts, each its header fields, a blank line and its body in CRLF lines."""
    lines = [body.splitlines() for body in bodies]  # at CR, LF and CRLF only, as MIME counts lines
    shared = _shared_lines(lines)
    tail = _crlf(lines[0][len(lines[0]) - shared:])
    encoded_tail = None
    parts = []
    for each in lines:
        head = _crlf(each[:len(each) - shared])
        data = head + tail
        if data.isascii() and max(map(len, each), default=0) <= LINE:
            encoding, encoded = "7bit", data
        elif _quoted_printable_exceeds(data, _base64_size(len(data))):
            encoding, encoded = "base64", _base64_lines(data)
        else:
            # Quoted-printable starts afresh at every line (CRLF in, CRLF out), so the lines before
            # the shared tail and the tail encode apart, the tail once for all copies.
            encoded_tail = binascii.b2a_qp(tail, istext=True) if encoded_tail is None else encoded_tail
            encoding, encoded = "quoted-printable", binascii.b2a_qp(head, istext=True) + encoded_tail
            if len(encoded) > _base64_size(len(data)):
                encoding, encoded = "base64", _base64_lines(data)
        parts.append((f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
                      f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode("ascii") + encoded)
    return parts


def _shared_lines(lines: list[list[bytes]]) -> int:
    """Return how many last lines all the bodies have in common."""
    low, high = 0, min(map(len, lines))
    while low < high:  # binary search: the end of a common ending is common too
        middle = (low + high + 1) // 2
        if all(other[len(other) - middle:] == lines[0][len(lines[0]) - middle:] for other in lines[1:]):
            low = middle
        else:
            high = middle - 1
    return low


def _crlf(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


# Bytes that quoted-printable may leave as they are (and spaces and tabs, but not at a line's end).
_LITERAL = bytes(range(33, 61)) + bytes(range(62, 127)) + b" \t\r\n"


def _quoted_printable_exceeds(data: bytes, size: int) -> bool:
    """Tell whether quoted-printable is sure to be longer than `size`: every other byte takes three."""
    return len(data) + 2 * len(data.translate(None, _LITERAL)) > size


def _base64_lines(data: bytes) -> bytes:
    """Return data in base64, in lines of 76 characters ending in CRLF."""
    encoded = base64.b64encode(data)
    return b"\r\n".join([encoded[start:start + 76] for start in range(0, len(encoded), 76)]) + b"\r\n"


def _base64_size(size: int) -> int:
    """Return how long `size` bytes are in base64, in lines of 76 characters ending in CRLF."""
    characters = (size + 2) // 3 * 4
    return characters + 2 * -(-characters // 76)


# Header fields: each returns whole lines, folded, ending in CRLF ------------------


def _unstructured(name: str, value: str) -> str:
    """Return a free-text field (Subject): plain and folded at spaces, or else encoded-words."""
    if not value:
        return f"{name}:\r\n"
    if _plain(value) and "  " not in value:
        lines = [f"{name}: "]
        for word in value.split(" "):
            if lines[-1] == f"{name}: ":
                lines[-1] += word
            elif len(lines[-1]) + 1 + len(word) <= LINE:
                lines[-1] += " " + word
            else:
                lines.append(" " + word)
        if max(map(len, lines)) <= LINE:
            return "\r\n".join(lines) + "\r\n"
    return f"{name}: " + "\r\n ".join(_encoded_words(value, len(name) + 2)) + "\r\n"


def _mailbox(name: str, display_name: str, address: str) -> str:
    """Return an address field: the address alone, or a display name and the address in <>."""
    if not _ADDRESS.fullmatch(address):  # quoted or non-ASCII local parts: leave them to the email package
        return _by_email_package(name, str(Address(display_name=display_name, addr_spec=address)))
    if not display_name.strip():
        return _verbatim(name, address)
    return _named(name, display_name, f"<{address}>")


def _named(name: str, phrase: str, angle_addr: str) -> str:
    """Return `name: phrase <…>` (From, List-Id): the phrase plain, quoted or encoded."""
    phrase = " ".join(phrase.split())
    if not phrase:
        return _verbatim(name, angle_addr)
    if _ATOMS.fullmatch(phrase) and "=?" not in phrase:
        shown = phrase
    elif _plain(phrase):
        shown = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        shown = ""
    if shown and len(name) + 2 + len(shown) <= LINE:
        lines = [f"{name}: {shown}"]
    else:
        words = _encoded_words(phrase, len(name) + 2)
        lines = [f"{name}: {words[0]}", *(" " + word for word in words[1:])]
    if len(lines[-1]) + 1 + len(angle_addr) <= LINE:
        lines[-1] += " " + angle_addr
    else:
        lines.append(" " + angle_addr)
    return "\r\n".join(lines) + "\r\n"


def _uri_list(name: str, value: str) -> str:
    """Return a list of <URI>s (List-Unsubscribe), folded between them."""
    if not _URI_LIST.fullmatch(value):
        return _by_email_package(name, value)
    uris = value.split(", ")
    lines = [f"{name}: {uris[0]}"]
    for uri in uris[1:]:
        if len(lines[-1]) + 2 + len(uri) <= LINE:
            lines[-1] += ", " + uri
        else:
            lines[-1] += ","
            lines.append(" " + uri)
    return "\r\n".join(lines) + "\r\n"


def _verbatim(name: str, value: str) -> str:
    """Return a field whose value we made and that never needs folding (Message-ID, an address)."""
    if _PRINTABLE.fullmatch(value) and len(name) + 2 + len(value) <= 998:
        return f"{name}: {value}\r\n"
    return _by_email_package(name, value)


def _plain(text: str) -> bool:
    """Tell whether text can stand in a header as it is: printable ASCII, no encoded-word look-alike."""
    return bool(_PRINTABLE.fullmatch(text)) and "=?" not in text


def _encoded_words(text: str, used: int) -> list[str]:
    """Return text as RFC 2047 base64 encoded-words of whole characters, the first fitting after `used` columns."""
    overhead = len("=?utf-8?b??=")
    capacity = (min(ENCODED_WORD, LINE - used) - overhead) // 4 * 3  # UTF-8 bytes per word
    chunks, chunk, size = [], [], 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > capacity:
            chunks.append("".join(chunk))
            chunk, size = [], 0
            capacity = (min(ENCODED_WORD, LINE - 1) - overhead) // 4 * 3  # after the folding space
        chunk.append(char)
        size += width
    chunks.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(c.encode('utf-8')).decode('ascii')}?=" for c in chunks]


def _by_email_package(name: str, value: str) -> str:
    return policy.SMTP.header_factory(name, value).fold(policy=policy.SMTP)


# Values ---------------------------------------------------------------------------


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
    return _boundary(*(part.encode("utf-8") for part in (message_id, *bodies)))


def _boundary(*parts: bytes) -> str:
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()[:32]
    return f"=_{digest}"
