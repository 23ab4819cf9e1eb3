"""The subscription endpoint: RFC 8058 one-click unsubscribe, confirm pages, double opt-in, no oracle."""

from __future__ import annotations

import email
import io
import re
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from wsgiref.simple_server import make_server
from wsgiref.util import setup_testing_defaults

import lxml.html
import pytest

from conftest import NOW
from mailing_fixtures import SECRET
from publisher.subscribers import SubscriberList
from publisher.subscriptions import make_app
from publisher.tokens import make_token
from publisher.transports import Outbox


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("PUBLISHER_SECRET", SECRET)
    return SECRET.encode()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(site, secret, clock):
    return make_app(site.config, clock, Outbox(site.root / "state" / "outbox"))


def call(app, method: str, path: str, body: str | bytes = b"", content_type: str = "application/x-www-form-urlencoded",
         client: str = "192.0.2.1", **headers):
    """Run one request through the WSGI app; return (status code, headers, body text)."""
    path, _, query = path.partition("?")
    data = body.encode() if isinstance(body, str) else body
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_ADDR": client,
               "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": content_type, "wsgi.input": io.BytesIO(data)}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, response_headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    text = b"".join(app(environ, start_response)).decode("utf-8")
    return answer["status"], answer["headers"], text


def member(site, address="reader@example.org", status="active", lang="en"):
    with SubscriberList(site.config) as subscribers:
        return subscribers.add(address, NOW, lang, status=status)


def status_of(site, address="reader@example.org"):
    with SubscriberList(site.config) as subscribers:
        return subscribers.find(address).status


def outbox(site):
    return sorted((site.root / "state" / "outbox").rglob("*.eml"))


def test_one_click_post_unsubscribes_without_cookie_or_login(site, app, secret):
    person = member(site)
    token = make_token(secret, "unsubscribe", person.id)
    code, headers, _ = call(app, "POST", f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")
    assert code == 200 and status_of(site) == "unsubscribed"
    assert headers["Referrer-Policy"] == "no-referrer" and "default-src 'none'" in headers["Content-Security-Policy"]
    again = call(app, "POST", f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")
    assert again[0] == 200, "a repeated click is answered the same way"


def test_one_click_post_as_multipart_form_data_works_too(site, app, secret):
    person = member(site)
    token = make_token(secret, "unsubscribe", person.id)
    body = ("--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n")
    code, _, _ = call(app, "POST", f"/unsubscribe?token={token}", body, "multipart/form-data; boundary=XyZ")
    assert code == 200 and status_of(site) == "unsubscribed"


def test_the_link_shows_a_confirm_form_and_changes_nothing(site, app, secret):
    person = member(site, lang="az")
    token = make_token(secret, "unsubscribe", person.id)
    code, _, page = call(app, "GET", f"/unsubscribe?token={token}", accept_language="az,en;q=0.5")
    assert code == 200 and status_of(site) == "active", "mail scanners follow links with GET"
    doc = lxml.html.fromstring(page)
    assert doc.get("lang") == "az"
    form = doc.xpath("//form")[0]
    assert form.get("method") == "post" and form.get("action") == f"https://news.example.org/unsubscribe?token={token}"
    assert doc.xpath("//input[@name='List-Unsubscribe']/@value") == ["One-Click"]
    assert not doc.xpath("//script") and "javascript:" not in page.lower()


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # altered signature
    lambda t: ("Q" if t[0] != "Q" else "R") + t[1:],  # altered subscriber id (never left as it was)
    lambda t: t.rpartition(".")[0] + "." + "A" * 22,  # forged signature
    lambda t: "",
    lambda t: t + "x",
])
def test_a_forged_or_altered_token_is_rejected(site, app, secret, tamper):
    person = member(site)
    token = tamper(make_token(secret, "unsubscribe", person.id))
    code, _, page = call(app, "POST", f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")
    assert code == 400 and status_of(site) == "active"
    assert "not valid" in page


def test_a_token_from_another_secret_or_purpose_is_rejected(site, app, secret):
    person = member(site)
    for token in (make_token(b"another-secret-" * 3, "unsubscribe", person.id),
                  make_token(secret, "confirm", person.id, NOW + timedelta(days=1))):
        code, _, _ = call(app, "POST", f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")
        assert code == 400
    assert status_of(site) == "active"


def test_asking_for_a_link_answers_the_same_for_known_and_unknown_addresses(site, app):
    member(site)
    known = call(app, "POST", "/unsubscribe", "address=reader%40example.org&lang=en")
    unknown = call(app, "POST", "/unsubscribe", "address=stranger%40example.org&lang=en")
    assert known == unknown and known[0] == 200
    app.worker.drain()
    sent = outbox(site)
    assert len(sent) == 1
    message = email.message_from_bytes(sent[0].read_bytes(), policy=policy.default)
    assert message["To"] == "reader@example.org"
    link = re.search(r"https://news\.example\.org/unsubscribe\?token=\S+", message.get_content()).group(0)
    code, _, _ = call(app, "POST", link.removeprefix("https://news.example.org"), "List-Unsubscribe=One-Click")
    assert code == 200 and status_of(site) == "unsubscribed"


def test_double_opt_in_confirms_only_with_a_post_from_the_emailed_link(site, app, clock):
    member(site)  # already active: nothing is sent to it, and the answer is the same
    answers = [call(app, "POST", "/subscribe", f"address={a}&lang=ru&weekly=1&alerts=1")
               for a in ("new%40example.org", "reader%40example.org")]
    assert answers[0] == answers[1] and answers[0][0] == 200
    app.worker.drain()
    assert status_of(site, "new@example.org") == "pending"
    sent = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in outbox(site)]
    assert [str(m["To"]) for m in sent] == ["new@example.org"]
    body = sent[0].get_content()
    assert sent[0]["Subject"] and sent[0]["Auto-Submitted"] == "auto-generated"
    path = re.search(r"https://news\.example\.org(/confirm\?token=\S+)", body).group(1)
    code, _, page = call(app, "GET", path)
    assert code == 200 and status_of(site, "new@example.org") == "pending"
    assert lxml.html.fromstring(page).xpath("//form/@method") == ["post"]
    code, _, _ = call(app, "POST", path, "lang=ru")
    assert code == 200 and status_of(site, "new@example.org") == "active"


def test_an_expired_confirmation_link_is_rejected(site, app, clock):
    call(app, "POST", "/subscribe", "address=late%40example.org&weekly=1")
    app.worker.drain()
    body = email.message_from_bytes(outbox(site)[0].read_bytes(), policy=policy.default).get_content()
    path = re.search(r"https://news\.example\.org(/confirm\?token=\S+)", body).group(1)
    clock.now = NOW + timedelta(days=8)
    code, _, _ = call(app, "POST", path)
    assert code == 400 and status_of(site, "late@example.org") == "pending"


def test_a_bad_address_is_refused_without_looking_anything_up(site, app):
    code, _, page = call(app, "POST", "/subscribe", "address=not-an-address&weekly=1")
    assert code == 400 and "valid email address" in page
    code, _, _ = call(app, "POST", "/subscribe", "address=a%40b.org%0D%0ABcc%3Ax%40evil.org&weekly=1")
    assert code == 400
    app.worker.drain()
    assert outbox(site) == []


def test_forms_that_send_email_and_token_guesses_are_rate_limited_per_client(site, app):
    codes = [call(app, "POST", "/subscribe", f"address=r{n}%40example.org&weekly=1", client="198.51.100.7")[0]
             for n in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 429
    assert call(app, "POST", "/unsubscribe", "address=x%40example.org", client="198.51.100.7")[0] == 429
    assert call(app, "POST", "/subscribe", "address=y%40example.org&weekly=1", client="198.51.100.8")[0] == 200
    guesses = [call(app, "POST", f"/unsubscribe?token={'A' * 22}.{n:022d}", client="198.51.100.9")[0] for n in range(21)]
    assert guesses[:20] == [400] * 20 and guesses[20] == 429
    app.worker.drain()
    assert len(outbox(site)) == 21


def test_one_click_posts_with_valid_tokens_are_never_rate_limited(site, app, secret):
    with SubscriberList(site.config) as subscribers:
        people = [subscribers.add(f"r{n}@example.org", NOW) for n in range(30)]
    for person in people:  # a mail provider posts for all its users from one address
        token = make_token(secret, "unsubscribe", person.id)
        assert call(app, "POST", f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click", client="203.0.113.5")[0] == 200
    with SubscriberList(site.config) as subscribers:
        assert subscribers.counts() == {"unsubscribed": 30}


def test_the_same_address_gets_at_most_one_email_in_ten_minutes(site, app):
    for client in ("192.0.2.10", "192.0.2.11", "192.0.2.12"):
        call(app, "POST", "/subscribe", "address=victim%40example.org&weekly=1", client=client)
    app.worker.drain()
    assert len(outbox(site)) == 1


def test_unknown_paths_and_methods(site, app):
    assert call(app, "GET", "/admin")[0] == 404
    code, headers, _ = call(app, "DELETE", "/unsubscribe")
    assert code == 405 and headers["Allow"] == "GET, HEAD, POST"


def test_pages_have_no_javascript_and_no_remote_resources(site, app):
    for path in ("/subscribe", "/unsubscribe", "/confirm?token=bad"):
        _, _, page = call(app, "GET", path)
        doc = lxml.html.fromstring(page)
        assert not doc.xpath("//script | //*[@src] | //link[@rel='stylesheet']")
        assert not [a for el in doc.iter() if isinstance(el.tag, str) for a in el.attrib if a.startswith("on")]


def test_a_real_http_one_click_post_on_loopback(site, app, secret):
    person = member(site)
    token = make_token(secret, "unsubscribe", person.id)
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/unsubscribe?token={token}",
                                     data=b"List-Unsubscribe=One-Click", method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    thread.join(timeout=10)
    server.server_close()
    assert status_of(site) == "unsubscribed"


def test_the_mailto_unsubscribe_is_honoured_by_the_mail_command(site, secret):
    import subprocess
    import sys
    from urllib.parse import parse_qs as parse, urlsplit

    from mailing_fixtures import WEEK, write_issue
    from publisher.delivery import send

    member(site, lang="ru")
    write_issue(site)
    send(site.config, WEEK, NOW)
    sent = email.message_from_bytes(outbox(site)[0].read_bytes(), policy=policy.default)
    mailto = re.findall(r"<(mailto:[^>]+)>", str(sent["List-Unsubscribe"]))[0]
    target = urlsplit(mailto)
    reply = EmailMessage()
    reply["From"], reply["To"] = "reader@example.org", target.path
    reply["Subject"] = parse(target.query)["subject"][0]
    reply.set_content("")
    forged = bytes(reply).replace(reply["Subject"][-5:].encode(), b"AAAAA")
    command = [sys.executable, "-m", "publisher", "subscribers", "unsubscribe-mail"]
    first = subprocess.run(command, cwd=site.root, input=forged, capture_output=True, timeout=60)
    assert first.returncode == 0 and b"nothing changed" in first.stderr and status_of(site) == "active"
    second = subprocess.run(command, cwd=site.root, input=bytes(reply), capture_output=True, timeout=60)
    assert second.returncode == 0 and status_of(site) == "unsubscribed"


def test_serve_subscriptions_listens_on_loopback_and_logs_no_tokens(site, secret):
    import os
    import select
    import subprocess
    import sys
    import time

    from smtp_sink import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "publisher", "serve-subscriptions", "--port", str(port)],
                              cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscribe", timeout=5) as response:
                    assert response.status == 200 and b"<form" in response.read()
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.05)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe?token=secret-looking-token.xyz", timeout=5)
        assert refused.value.code == 400
        log = b""
        while b"GET /unsubscribe 400" not in log and time.monotonic() < deadline:  # logged just after answering
            if select.select([server.stderr], [], [], 1)[0]:
                log += os.read(server.stderr.fileno(), 65536)
    finally:
        server.terminate()
        _, rest = server.communicate(timeout=30)
    assert b"GET /unsubscribe 400" in log and b"secret-looking-token" not in log + rest


@pytest.mark.parametrize("method, path, body, content_type", [
    ("GET", "/unsubscribe?" + "&".join(f"f{n}=x" for n in range(50)), b"", "text/plain"),
    ("POST", "/subscribe", "&".join(f"f{n}=x" for n in range(50)), "application/x-www-form-urlencoded"),
    ("POST", "/unsubscribe", b"--B\r\nContent-Disposition: form-data; name=\"address\"\r\nContent-Type: multipart/mixed\r\n\r\n--B--",
     "multipart/form-data; boundary=B"),
    ("POST", "/subscribe", b"\xff\xfe\x00garbage=\x00", "application/x-www-form-urlencoded"),
    ("POST", "/confirm?token=%00%ff", b"x" * 100000, "application/x-www-form-urlencoded"),
])
def test_hostile_requests_get_a_plain_4xx_never_an_error(site, app, method, path, body, content_type):
    code, headers, _ = call(app, method, path, body, content_type)
    assert 400 <= code < 500 or code == 200
    app.worker.drain()
    assert outbox(site) == []
