"""A real SMTP server on loopback (aiosmtpd) that records what it accepts and can misbehave on cue."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from aiosmtpd.controller import Controller

# A rule gets (stage, recipient or "", how many times this recipient reached this stage) and
# returns None to go on, an SMTP reply such as "451 4.3.0 try later" to refuse, or DROP.
DROP = "drop"
ACCEPT_THEN_DROP = "accept-then-drop"  # keep the message, then die before saying 250: the sender cannot know
Rule = Callable[[str, str, int], "str | None"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sink:
    """Accept mail on 127.0.0.1; `accepted` holds (recipient, message bytes) in arrival order."""

    rule: Rule | None = None
    accepted: list[tuple[str, bytes]] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    on_accept: Callable[[int], None] | None = None

    def start(self, **options) -> "Sink":
        """Start listening; `options` go to aiosmtpd (tls_context, require_starttls, authenticator, ...)."""
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def recipients(self) -> Counter:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.accepted)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def decide(self, stage: str, rcpt: str) -> str | None:
        with self.lock:
            self.seen[(stage, rcpt)] += 1
            times = self.seen[(stage, rcpt)]
        return self.rule(stage, rcpt, times) if self.rule else None


class _Handler:
    def __init__(self, sink: Sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, options):
        reply = self.sink.decide("mail", "")
        if reply == DROP:
            return _drop(server)
        envelope.mail_from = address
        return reply or "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.sink.decide("rcpt", address)
        if reply == DROP:
            return _drop(server)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        reply = self.sink.decide("data", rcpt)
        if reply == DROP:
            return _drop(server)
        if reply and reply != ACCEPT_THEN_DROP:
            return reply
        with self.sink.lock:
            for address in envelope.rcpt_tos:
                self.sink.accepted.append((address, envelope.original_content))
            count = len(self.sink.accepted)
        if self.sink.on_accept:
            self.sink.on_accept(count)
        if reply == ACCEPT_THEN_DROP:
            return _drop(server)
        return "250 2.0.0 Message accepted for delivery"


def _drop(server) -> str:
    """Close the connection without an answer, as a crashed or overloaded relay does."""
    server.transport.abort()
    return "421 dropped"
