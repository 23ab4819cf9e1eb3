"""Where messages go: an outbox folder (the default) or an SMTP relay, one recipient per message."""

from __future__ import annotations

import ipaddress
import os
import re
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Callable, Protocol

from publisher.config import Config
from publisher.problems import EditorError, Problem
from publisher.subscribers import mask_addresses

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


class DeliveryError(Exception):
    """The run cannot go on (relay down, refused our sender, bad credentials); what is sent stays sent."""


class Transient(Exception):
    """A failure worth retrying: a 4xx reply or a dropped connection, at a stage of the SMTP transaction."""

    def __init__(self, stage: str, detail: str, in_doubt: bool = False):
        super().__init__(detail)
        self.stage = stage
        self.detail = detail
        self.in_doubt = in_doubt  # the relay may have accepted the message before the connection dropped


class Rejected(Exception):
    """A permanent (5xx) refusal of one recipient or message; `hard` means the address itself is bad."""

    def __init__(self, detail: str, hard: bool):
        super().__init__(detail)
        self.detail = detail
        self.hard = hard


class Transport(Protocol):
    name: str

    def deliver(self, sender: str, recipient: str, data: bytes, key: str, committing: Callable[[], None]) -> None:
        """Hand over one message; call `committing` just before the point of no return."""

    def close(self) -> None: ...


class Outbox:
    """Write each message to state/outbox/<mailing>/<subscriber id>.eml, atomically and idempotently."""

    name = "outbox"

    def __init__(self, folder: Path):
        self.folder = folder

    def deliver(self, sender: str, recipient: str, data: bytes, key: str, committing: Callable[[], None]) -> None:
        path = self.folder / key
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        committing()
        # A rename is all or nothing, and the name is fixed per recipient: a resend overwrites, never doubles.
        os.replace(temporary, path)

    def close(self) -> None:
        pass


class Smtp:
    """Send through an SMTP relay over one reused connection; classify every failure for the caller."""

    name = "smtp"

    def __init__(self, host: str, port: int, security: str, username: str, password: str, helo: str, timeout: float):
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.helo, self.timeout = helo, timeout
        self.connection: smtplib.SMTP | None = None

    def deliver(self, sender: str, recipient: str, data: bytes, key: str, committing: Callable[[], None]) -> None:
        conn = self._connection()
        stage = "mail"
        try:
            self._expect(conn.mail(sender), (250,), "mail")
            stage = "rcpt"
            self._expect(conn.rcpt(recipient), (250, 251), "rcpt")
            stage = "data"
            self._expect(conn.docmd("DATA"), (354,), "data")
            conn.send(_dot_stuffed(data))
            # From the final dot on, the relay may have the message even if we never hear back.
            committing()
            stage = "dot"
            conn.send(b".\r\n")
            self._expect(conn.getreply(), (250,), "dot")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise Transient(stage, f"connection lost during {stage.upper()}: {exc or type(exc).__name__}",
                            in_doubt=stage == "dot") from None
        except (Transient, Rejected):
            self._reset()
            raise

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None

    def _connection(self) -> smtplib.SMTP:
        if self.connection is not None:
            return self.connection
        try:
            context = ssl.create_default_context()
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.helo, timeout=self.timeout,
                                        context=context)
            else:
                conn = smtplib.SMTP(self.host, self.port, local_hostname=self.helo, timeout=self.timeout)
            # Each message ends with a small write (the final dot) right after a large one; with
            # Nagle's algorithm and delayed ACKs that costs ~40 ms a message.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise DeliveryError(f"the relay {self.host}:{self.port} does not offer STARTTLS; "
                                        "set [smtp] security = \"tls\" or fix the relay")
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"the relay refused the login for [smtp] username: {_reply_text(exc.smtp_code, exc.smtp_error)}") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS with {self.host}:{self.port} failed: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise DeliveryError(f"the relay refused us: {_reply_text(exc.smtp_code, exc.smtp_error)}") from None
            raise Transient("connect", _reply_text(exc.smtp_code, exc.smtp_error)) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Transient("connect", f"cannot reach {self.host}:{self.port}: {exc or type(exc).__name__}") from None
        self.connection = conn
        return conn

    def _expect(self, reply: tuple[int, bytes], codes: tuple[int, ...], stage: str) -> None:
        code, text = reply
        if code in codes:
            return
        detail = _reply_text(code, text)
        if code == 421 or code == -1:
            self.close()  # the relay is closing this connection; reconnect on the next try
            raise Transient(stage, detail)
        if 400 <= code < 500:
            raise Transient(stage, detail)
        if 500 <= code < 600:
            if stage == "mail":
                raise DeliveryError(f"the relay refused our sender address: {detail}")
            raise Rejected(detail, hard=_bad_mailbox(code, text, stage))
        raise Transient(stage, f"unexpected reply: {detail}")

    def _reset(self) -> None:
        if self.connection is None:
            return
        try:
            self.connection.rset()
        except (smtplib.SMTPException, OSError):
            self.close()


def make_transport(config: Config) -> Outbox | Smtp:
    """Return the SMTP transport when [smtp] host is set, else the outbox folder in state/."""
    s = config.smtp
    if not s.host:
        return Outbox(config.path("state") / "outbox")
    # "auto": STARTTLS, required, to a remote relay; plain SMTP to one on this machine, where
    # traffic never leaves it and a stock local MTA often offers only a self-signed certificate.
    security = s.security if s.security != "auto" else ("none" if _is_loopback(s.host) else "starttls")
    password = ""
    if s.username:
        password = os.environ.get(s.password_env, "")
        if not password:
            raise EditorError([Problem("publisher.toml", 1, (
                f"[smtp] username is set but the environment variable {s.password_env} is empty; "
                "put the relay password there (never in publisher.toml)"))])
        if security == "none" and not _is_loopback(s.host):
            raise EditorError([Problem("publisher.toml", 1, (
                "[smtp] security = \"none\" would send the password in clear to a remote relay; "
                "use \"starttls\" or \"tls\""))])
    return Smtp(s.host, s.port or DEFAULT_PORTS[security], security, s.username, password,
                s.helo or config.host or "localhost", s.timeout)


def _dot_stuffed(data: bytes) -> bytes:
    """Return the DATA payload (RFC 5321 4.5.2): CRLF lines, a leading '.' doubled, ending in CRLF."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:  # the regex is slow; built messages are CRLF already
        data = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    data = (b"." if data.startswith(b".") else b"") + data.replace(b"\r\n.", b"\r\n..")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _bad_mailbox(code: int, text: bytes, stage: str) -> bool:
    """Say whether a 5xx says the address itself is bad: a hard bounce, not a policy or content refusal.

    With an enhanced status code (RFC 3463), 5.1.x (bad address) and 5.2.1 (mailbox disabled);
    without one, 550/551/553 to RCPT, the classic "no such mailbox" replies.
    """
    match = _ENHANCED.match(text.decode("utf-8", "replace"))
    if match:
        return match.group(2) == "1" or (match.group(2), match.group(3)) == ("2", "1")
    return stage == "rcpt" and code in (550, 551, 553)


def _reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return mask_addresses(f"{code} {' '.join(text.split())}")[:300]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False
