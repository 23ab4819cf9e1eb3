"""The subscription endpoint (WSGI): RFC 8058 one-click unsubscribe, confirm pages, double opt-in.

Nothing it says depends on whether an address is known: requests that name an address are
answered at once and handled by a background worker, so neither the words nor the timing of
the answer tell a stranger who is on the list. Changing state always takes a POST, because
mail scanners follow every link in a message with GET.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from babel import negotiate_locale

from publisher.config import Config
from publisher.mail import envelope_sender, from_address
from publisher.subscribers import (
    LISTS,
    BadAddress,
    SubscriberList,
    mask,
    normalise_address,
)
from publisher.templates import Templates
from publisher.tokens import CONFIRM, UNSUBSCRIBE, load_secret, make_token, read_token
from publisher.transports import DeliveryError, Rejected, Transient, make_transport

log = logging.getLogger("publisher.subscriptions")

MAX_BODY = 8192
EMAIL_EVERY = timedelta(minutes=10)  # at most one email per address this often: no mail-bombing through us
HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("Referrer-Policy", "no-referrer"),  # the token is in the URL
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
]

Clock = Callable[[], datetime]


class SubscriptionApp:
    """The WSGI application; one instance per site."""

    def __init__(self, config: Config, clock: Clock, transport=None, secret: bytes | None = None):
        self.config = config
        self.clock = clock
        self.secret = secret or load_secret(config)
        self.templates = Templates(config)
        self.base = config.subscriptions.url or config.base_url
        self.mount = urlsplit(self.base).path.rstrip("/")
        self.limiter = RateLimiter(config.subscriptions.rate_per_minute)
        self.worker = Worker(config, self.secret, clock, transport or make_transport(config), self.templates, self.base)

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        try:
            status, body, extra = self.handle(environ)
        except Exception:  # a bug must not show a traceback (or anything else) to the visitor
            log.exception("subscription endpoint failed")
            status, body, extra = HTTPStatus.INTERNAL_SERVER_ERROR, b"Internal error", []
        kind = "text/html; charset=utf-8" if body.startswith(b"<!DOCTYPE") else "text/plain; charset=utf-8"
        headers = [("Content-Type", kind), ("Content-Length", str(len(body)))] + HEADERS + extra
        start_response(f"{status.value} {status.phrase}", headers)
        return [b"" if environ.get("REQUEST_METHOD", "").upper() == "HEAD" else body]

    def handle(self, environ: dict) -> tuple[HTTPStatus, bytes, list]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if self.mount and path.startswith(self.mount + "/"):
            path = path[len(self.mount):]
        route = {"/unsubscribe": self.unsubscribe, "/subscribe": self.subscribe, "/confirm": self.confirm}.get(path.rstrip("/") or "/")
        if route is None:
            return HTTPStatus.NOT_FOUND, b"Not found", []
        if method not in ("GET", "HEAD", "POST"):
            return HTTPStatus.METHOD_NOT_ALLOWED, b"Method not allowed", [("Allow", "GET, HEAD, POST")]
        try:
            query = _fields(environ.get("QUERY_STRING", ""))
            form = _form(environ) if method == "POST" else {}
        except ValueError:  # too many fields: nothing we serve takes more than a few
            return HTTPStatus.BAD_REQUEST, b"Bad request", []
        lang = self._language(environ, query, form)
        # Only what could be abused is rate-limited: forms that make us send email, and guessing
        # at tokens. A valid token never is: mail providers send many one-click POSTs from one address.
        client = self._client(environ)
        return route(Request(method, query, form, lang, lambda: self.limiter.allow(client, time.monotonic())))

    def unsubscribe(self, request: "Request"):
        method, query, form, lang = request.method, request.query, request.form, request.lang
        token = query.get("token", form.get("token"))
        if token is None:
            if method == "POST" and "address" in form:
                if not request.allowed():
                    return TOO_MANY
                address = _address(form["address"])
                if address is None:
                    return self.page(HTTPStatus.BAD_REQUEST, "unsubscribe-request", lang, error=True)
                self.worker.submit("unsubscribe-link", address, lang)
                return self.page(HTTPStatus.OK, "unsubscribe-requested", lang)
            return self.page(HTTPStatus.OK, "unsubscribe-request", lang)
        subscriber_id = read_token(self.secret, UNSUBSCRIBE, token)
        if subscriber_id is None:
            return self.page(HTTPStatus.BAD_REQUEST, "bad-link", lang) if request.allowed() else TOO_MANY
        if method != "POST":
            return self.page(HTTPStatus.OK, "unsubscribe-confirm", lang, token=token)
        # RFC 8058: the POST body is List-Unsubscribe=One-Click; no cookie, no login, no further step.
        with SubscriberList(self.config) as subscribers:
            subscribers.set_status(subscriber_id, "unsubscribed", self.clock())
        return self.page(HTTPStatus.OK, "unsubscribed", lang)

    def subscribe(self, request: "Request"):
        form, lang = request.form, request.lang
        if request.method != "POST":
            return self.page(HTTPStatus.OK, "subscribe", lang)
        if not request.allowed():
            return TOO_MANY
        address = _address(form.get("address", ""))
        chosen = tuple(name for name in LISTS if form.get(name))
        if address is None or not chosen:
            return self.page(HTTPStatus.BAD_REQUEST, "subscribe", lang, error=True)
        self.worker.submit("subscribe", address, lang, lists=chosen, discreet=bool(form.get("discreet")))
        return self.page(HTTPStatus.OK, "subscribe-requested", lang)

    def confirm(self, request: "Request"):
        lang = request.lang
        token = request.query.get("token") or request.form.get("token") or ""
        subscriber_id = read_token(self.secret, CONFIRM, token, self.clock())
        if subscriber_id is None:
            return self.page(HTTPStatus.BAD_REQUEST, "bad-link", lang) if request.allowed() else TOO_MANY
        if request.method != "POST":
            return self.page(HTTPStatus.OK, "confirm", lang, token=token)
        with SubscriberList(self.config) as subscribers:
            subscribers.set_status(subscriber_id, "active", self.clock())
        return self.page(HTTPStatus.OK, "confirmed", lang)

    def page(self, status: HTTPStatus, name: str, lang: str, token: str = "", error: bool = False):
        html = self.templates.render("subscription.html", lang, page=name, token=token, error=error,
                                     lists=LISTS, action_base=self.base)
        return status, html.encode("utf-8"), []

    def _language(self, environ: dict, query: dict, form: dict) -> str:
        languages = self.config.languages
        chosen = form.get("lang") or query.get("lang")
        if chosen in languages:
            return chosen
        accepted = [part.split(";")[0].strip().replace("-", "_") for part in environ.get("HTTP_ACCEPT_LANGUAGE", "").split(",")]
        return negotiate_locale([a for a in accepted if a], list(languages)) or self.config.default_language

    def _client(self, environ: dict) -> str:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if self.config.subscriptions.trust_forwarded and forwarded:
            return forwarded.split(",")[-1].strip()  # the hop our own proxy added; earlier ones can be forged
        return environ.get("REMOTE_ADDR", "")


@dataclass(frozen=True)
class Request:
    """What a route needs of one request; `allowed()` spends one of the client's rate-limited requests."""

    method: str
    query: dict[str, str]
    form: dict[str, str]
    lang: str
    allowed: Callable[[], bool]


TOO_MANY = (HTTPStatus.TOO_MANY_REQUESTS, b"Too many requests; try again in a minute", [("Retry-After", "60")])


class RateLimiter:
    """Allow each client `per_minute` requests in any sliding minute; remembers a bounded number of clients."""

    def __init__(self, per_minute: int, clients: int = 10000):
        self.per_minute = per_minute
        self.clients = clients
        self.seen: OrderedDict[str, deque] = OrderedDict()
        self.lock = threading.Lock()

    def allow(self, client: str, now: float) -> bool:
        with self.lock:
            stamps = self.seen.pop(client, None) or deque()
            while stamps and now - stamps[0] >= 60:
                stamps.popleft()
            self.seen[client] = stamps
            while len(self.seen) > self.clients:
                self.seen.popitem(last=False)
            if len(stamps) >= self.per_minute:
                return False
            stamps.append(now)
            return True


class Worker:
    """Handle requests that name an address away from the request, and send the emails they need."""

    def __init__(self, config: Config, secret: bytes, clock: Clock, transport, templates: Templates, base: str):
        self.config, self.secret, self.clock = config, secret, clock
        self.transport, self.templates, self.base = transport, templates, base
        self.jobs: queue.Queue = queue.Queue(maxsize=1000)
        self.last_email: OrderedDict[str, datetime] = OrderedDict()
        self.thread = threading.Thread(target=self._run, name="subscriptions-worker", daemon=True)
        self.thread.start()

    def submit(self, kind: str, address: str, lang: str, **options) -> None:
        try:
            self.jobs.put_nowait((kind, address, lang, options))
        except queue.Full:
            log.warning("too many pending subscription requests; one was dropped")

    def drain(self) -> None:
        """Wait until every submitted request is handled (for tests and shutdown)."""
        self.jobs.join()

    def _run(self) -> None:
        while True:
            kind, address, lang, options = self.jobs.get()
            try:
                self.handle(kind, address, lang, **options)
            except Exception:
                log.exception("a subscription request for %s failed", mask(address))
            finally:
                self.jobs.task_done()

    def handle(self, kind: str, address: str, lang: str, lists: tuple[str, ...] = LISTS, discreet: bool = False) -> None:
        now = self.clock()
        with SubscriberList(self.config) as subscribers:
            known = subscribers.find(address)
            if kind == "subscribe":
                if known is not None and known.status == "active":
                    return  # already receiving; saying so by email would only help someone probing
                subscriber = subscribers.add(address, now, lang, lists, "pending", discreet)
                if subscriber.status != "pending":
                    subscribers.set_status(subscriber.id, "pending", now)
                expires = now + timedelta(days=self.config.subscriptions.confirm_days)
                token = make_token(self.secret, CONFIRM, subscriber.id, expires)
                self._email(address, lang, "confirm", f"{self.base}confirm?token={token}", now)
            elif kind == "unsubscribe-link" and known is not None and known.status in ("active", "pending"):
                token = make_token(self.secret, UNSUBSCRIBE, known.id)
                self._email(address, known.language, "unsubscribe", f"{self.base}unsubscribe?token={token}", now)

    def _email(self, address: str, lang: str, kind: str, link: str, now: datetime) -> None:
        key = hashlib.sha256(address.encode()).hexdigest()
        last = self.last_email.get(key)
        if last is not None and now - last < EMAIL_EVERY:
            return
        self.last_email[key] = now
        while len(self.last_email) > 10000:
            self.last_email.popitem(last=False)
        message = self.message(address, lang, kind, link, now)
        sender = envelope_sender(self.config)
        try:
            self.transport.deliver(sender, address, bytes(message), f"subscriptions/{kind}-{key[:24]}.eml", lambda: None)
        except (Transient, Rejected, DeliveryError) as failure:
            log.warning("could not email %s: %s", mask(address), failure)
        finally:
            self.transport.close()

    def message(self, address: str, lang: str, kind: str, link: str, now: datetime) -> EmailMessage:
        """Return the confirmation or unsubscribe-link email: plain text, no tracking, one recipient."""
        n = self.config.newsletter
        text = self.templates.render(f"subscription-{kind}.txt", lang, link=link)
        subject, _, body = text.partition("\n\n")
        message = EmailMessage(policy=policy.SMTP)
        sender = from_address(self.config)
        name = self.config.text(n.from_name, lang) or self.config.text(self.config.title, lang)
        message["From"] = Address(display_name=name, addr_spec=sender)
        message["To"] = address
        message["Subject"] = subject.strip()
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=self.config.host or None)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body, charset="utf-8")
        return message


def make_app(config: Config, clock: Clock, transport=None) -> SubscriptionApp:
    """Return the WSGI application for a site (for any WSGI server: gunicorn, waitress, uWSGI)."""
    return SubscriptionApp(config, clock, transport)


def serve(config: Config, host: str, port: int, clock: Clock) -> None:
    """Serve the endpoint until interrupted (a threaded server, meant to sit behind the web server)."""
    app = make_app(config, clock)
    with make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler) as server:
        log.warning("serving subscriptions on http://%s:%d/ (public URL %s)", host, port, app.base)
        server.serve_forever()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Log the method, path and status only: query strings carry tokens."""

    def log_request(self, code="-", size="-") -> None:
        log.info("%s %s %s", self.command, self.path.split("?")[0], code)


def _form(environ: dict) -> dict[str, str]:
    """Read a small url-encoded or multipart form body (RFC 8058 allows both)."""
    try:
        length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    kind = environ.get("CONTENT_TYPE", "")
    if kind.startswith("multipart/form-data"):
        return _multipart(raw, kind)
    text = raw.decode("utf-8", "replace")
    return _fields(text)


def _fields(text: str) -> dict[str, str]:
    """Parse url-encoded fields, first value of each; raise ValueError past 20 fields."""
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=20).items()}


def _multipart(raw: bytes, kind: str) -> dict[str, str]:
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + kind.encode("latin-1") + b"\r\n\r\n" + raw)
    fields = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return fields


def _address(text: str) -> str | None:
    try:
        return normalise_address(text)
    except BadAddress:
        return None


_TOKEN_IN_TEXT = re.compile(r"[A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{22}")


def unsubscribe_by_mail(config: Config, data: bytes, now: datetime) -> bool:
    """Honour the List-Unsubscribe mailto: unsubscribe whoever a valid token in the subject or text names."""
    from email.parser import BytesParser

    secret = load_secret(config)
    message = BytesParser(policy=policy.default).parsebytes(data[:1_000_000])
    places = [str(message["Subject"] or ""), str(message["To"] or "")]
    body = message.get_body(("plain",))
    if body is not None:
        try:
            places.append(body.get_content()[:10_000])
        except (LookupError, ValueError):
            pass
    for candidate in _TOKEN_IN_TEXT.findall(" ".join(places)):
        subscriber_id = read_token(secret, UNSUBSCRIBE, candidate)
        if subscriber_id is not None:
            with SubscriberList(config) as subscribers:
                subscribers.set_status(subscriber_id, "unsubscribed", now)
            return True
    return False
