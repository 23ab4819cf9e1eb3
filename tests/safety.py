"""Structural safety checks of built files, shared by the tests of every output kind."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import lxml.etree
import lxml.html

FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "form", "input", "button", "textarea", "svg", "math",
                  "base", "frame", "frameset", "applet", "video", "audio", "source", "noscript"}
SAFE_SCHEMES = {"", "http", "https", "mailto"}


def html_fragments(path: Path) -> list[str]:
    """Return every HTML document or fragment a built file carries."""
    data = path.read_bytes()
    suffix = path.suffix
    if suffix == ".html":
        return [data.decode("utf-8")]
    if suffix in (".atom", ".rss", ".xml"):
        root = lxml.etree.fromstring(data)
        return [el.text for el in root.iter() if isinstance(el.tag, str) and el.text and "<" in el.text]
    if suffix == ".json":
        feed = json.loads(data)
        return [item["content_html"] for item in feed.get("items", []) if "content_html" in item]
    if suffix == ".eml":
        message = email.message_from_bytes(data, policy=policy.default)
        part = message.get_body(("html",))
        return [part.get_content()] if part else []
    return []


def unsafe_parts(fragment: str, base_url: str) -> list[str]:
    """List everything in an HTML fragment that could run code, track or load from elsewhere."""
    doc = lxml.html.fromstring(f"<div>{fragment}</div>") if not fragment.lstrip().lower().startswith(
        ("<!doctype", "<html")) else lxml.html.document_fromstring(fragment)
    found = []
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag in FORBIDDEN_TAGS:
            found.append(f"<{tag}>")
        if tag == "style" and el.getparent() is not None and el.getparent().tag != "head":
            found.append("<style> outside <head>")
        if tag == "meta" and el.get("http-equiv", "").lower() == "refresh":
            found.append("meta refresh")
        if tag == "link" and el.get("rel") == "stylesheet" and urlsplit(el.get("href", "")).scheme:
            if not el.get("href", "").startswith(base_url):
                found.append(f"remote stylesheet {el.get('href')}")
        for name, value in el.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{tag}@{name}")
            if name.lower() in ("href", "src", "action", "formaction", "xlink:href", "background", "poster"):
                scheme = urlsplit(value.strip()).scheme.lower()
                if scheme not in SAFE_SCHEMES:
                    found.append(f"{tag}@{name}={value[:40]}")
            if name.lower() == "src" and (urlsplit(value).scheme or value.startswith("//")):
                if not value.startswith(base_url):
                    found.append(f"remote {tag}@src={value[:60]}")
            if name.lower() == "style" and ("url(" in value.lower() or "expression(" in value.lower()):
                found.append(f"{tag}@style with url()")
    return found
