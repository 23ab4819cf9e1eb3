"""Signed, opaque tokens for unsubscribe and confirmation links (HMAC-SHA256, constant-time checks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from datetime import datetime

from publisher.config import Config
from publisher.problems import EditorError, Problem

MIN_SECRET_LENGTH = 32
UNSUBSCRIBE, CONFIRM = "unsubscribe", "confirm"  # token purposes: a token for one never passes for the other
MAC_BYTES = 16  # 128 bits: unguessable, and short enough for a mailto subject
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}(\.[0-9]{1,12})?\.[A-Za-z0-9_-]{22}")


def load_secret(config: Config) -> bytes:
    """Return the signing secret from the environment; refuse to go on without a strong one."""
    name = config.delivery.secret_env
    value = os.environ.get(name, "")
    if len(value) < MIN_SECRET_LENGTH:
        state = "is not set" if not value else f"is shorter than {MIN_SECRET_LENGTH} characters"
        raise EditorError([Problem("publisher.toml", 1, (
            f"the environment variable {name} {state}; it signs every unsubscribe and confirmation link. "
            "Set it to a long random value kept out of the repository, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, and keep it: "
            "changing it breaks the links in every message already sent"))])
    return value.encode("utf-8")


def make_token(secret: bytes, purpose: str, subject: str, expires: datetime | None = None) -> str:
    """Return a token naming `subject` (an opaque subscriber id) for one purpose, optionally expiring."""
    payload = subject if expires is None else f"{subject}.{int(expires.timestamp())}"
    return f"{payload}.{_mac(secret, purpose, payload)}"


def read_token(secret: bytes, purpose: str, token: str, now: datetime | None = None) -> str | None:
    """Return the subject of a valid, unexpired token for `purpose`, or None for anything else."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    payload, _, mac = token.rpartition(".")
    # Compare in constant time so the answer's timing says nothing about how close a forgery came.
    if not hmac.compare_digest(mac.encode("ascii"), _mac(secret, purpose, payload).encode("ascii")):
        return None
    subject, _, expires = payload.partition(".")
    if expires and (now is None or now.timestamp() > int(expires)):
        return None
    return subject


def _mac(secret: bytes, purpose: str, payload: str) -> str:
    digest = hmac.new(secret, f"{purpose}\n{payload}".encode("utf-8"), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
