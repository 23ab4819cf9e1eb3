"""SMTP security against a real aiosmtpd on loopback: STARTTLS, implicit TLS, AUTH, and no silent downgrade."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections import Counter

import pytest
from aiosmtpd.smtp import AuthResult

from conftest import CONFIG, NOW
from mailing_fixtures import WEEK, address, subscriber_csv, write_issue
from publisher.delivery import ledger_counts, send
from publisher.subscribers import SubscriberList
from publisher.transports import DeliveryError
from smtp_sink import Sink

PASSWORD = "relay-password-for-tests"


@pytest.fixture
def secret(monkeypatch):
    from mailing_fixtures import SECRET

    monkeypatch.setenv("PUBLISHER_SECRET", SECRET)
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", PASSWORD)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem")], check=True, capture_output=True, timeout=60)
    return folder / "cert.pem", folder / "key.pem"


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return context


def check_login(server, session, envelope, mechanism, auth_data):
    good = auth_data.login == b"newsletter" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=good, handled=False)  # not handled: aiosmtpd answers 535 itself


def configure(site, port: int, security: str, username: str = "newsletter") -> None:
    site.write("publisher.toml", f'{CONFIG}\n[delivery]\nrate = 0\nbackoff = 0.001\nretries = 1\n\n'
                                 f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
                                 f'username = "{username}"\ntimeout = 5\n')
    write_issue(site)
    with SubscriberList(site.config) as subscribers:
        subscribers.import_csv(subscriber_csv(site, 6), NOW)


@pytest.fixture
def sinks():
    started = []
    yield started
    for sink in started:
        sink.stop()


def start(sinks, **options) -> Sink:
    sink = Sink().start(**options)
    sinks.append(sink)
    return sink


def test_starttls_with_login_delivers(site, secret, certificate, sinks, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test certificate, as a private CA would be
    sink = start(sinks, tls_context=server_context(certificate), require_starttls=True, authenticator=check_login,
                 auth_require_tls=True)
    configure(site, sink.port, "starttls")
    assert send(site.config, WEEK, NOW).sent == 6
    assert sink.recipients() == Counter({address(n): 1 for n in range(6)})


def test_implicit_tls_delivers(site, secret, certificate, sinks, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    sink = start(sinks, ssl_context=server_context(certificate), authenticator=check_login, auth_require_tls=False)
    configure(site, sink.port, "tls")
    assert send(site.config, WEEK, NOW).sent == 6


def test_an_untrusted_certificate_stops_the_run(site, secret, certificate, sinks, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sink = start(sinks, tls_context=server_context(certificate), require_starttls=True, authenticator=check_login)
    configure(site, sink.port, "starttls")
    with pytest.raises(DeliveryError, match="TLS"):
        send(site.config, WEEK, NOW)
    assert sink.count() == 0 and ledger_counts(site.config, f"weekly/{WEEK}") == {"queued": 6}


def test_a_relay_without_starttls_is_never_used_in_clear(site, secret, sinks):
    sink = start(sinks, authenticator=check_login, auth_require_tls=False)
    configure(site, sink.port, "starttls")
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        send(site.config, WEEK, NOW)
    assert sink.count() == 0


def test_a_wrong_password_stops_the_run_with_a_clear_message(site, secret, certificate, sinks, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "wrong")
    sink = start(sinks, tls_context=server_context(certificate), require_starttls=True, authenticator=check_login)
    configure(site, sink.port, "starttls")
    with pytest.raises(DeliveryError, match="refused the login"):
        send(site.config, WEEK, NOW)
    assert sink.count() == 0


def test_a_password_is_never_sent_in_clear_to_a_remote_relay(site, secret):
    site.write("publisher.toml", f'{CONFIG}\n[smtp]\nhost = "smtp.example.org"\nsecurity = "none"\nusername = "x"\n')
    write_issue(site)
    result = site.cli("send", WEEK)
    assert result.returncode == 1 and "in clear" in result.stderr and "Traceback" not in result.stderr


def test_auto_speaks_plain_smtp_to_a_relay_on_this_machine(site, secret, sinks):
    sink = start(sinks)
    site.write("publisher.toml", f'{CONFIG}\n[delivery]\nrate = 0\n\n[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\n')
    write_issue(site)
    with SubscriberList(site.config) as subscribers:
        subscribers.import_csv(subscriber_csv(site, 3), NOW)
    assert send(site.config, WEEK, NOW).sent == 3


def test_auto_requires_starttls_of_a_remote_relay(site):
    from publisher.transports import make_transport

    site.write("publisher.toml", f'{CONFIG}\n[smtp]\nhost = "smtp.example.org"\n')
    transport = make_transport(site.config)
    assert (transport.security, transport.port) == ("starttls", 587)
