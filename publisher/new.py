"""`publisher new`: start an entry with the front matter its type needs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import yaml

from publisher.config import Config
from publisher.content import TYPES, derive_id
from publisher.problems import EditorError, Problem
from publisher.text import clean_text, slugify


def new_entry(config: Config, kind: str, title: str, lang: str, now: datetime) -> Path:
    """Write a draft entry skeleton and return its path; never overwrite a file."""
    if kind not in TYPES:
        raise EditorError([Problem("publisher new", 1, f"unknown type '{kind}' (use {', '.join(TYPES)})")])
    title = clean_text(title).strip()
    if not title:
        raise EditorError([Problem("publisher new", 1, "the title is empty; give the entry a title")])
    if lang not in config.languages:
        raise EditorError([Problem("publisher new", 1, f"unknown language '{lang}' (use {', '.join(config.languages)})")])
    date = now.astimezone(config.tz).replace(second=0, microsecond=0)
    slug = slugify(title)
    suffix = "" if lang == config.default_language else f".{lang}"
    path = config.path("content") / f"{date:%Y}" / f"{slug}{suffix}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = skeleton(config, kind, title, lang, date, slug)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        rel = path.relative_to(config.root).as_posix()
        raise EditorError([Problem(rel, 1, "this file already exists; choose another title or edit it")])
    return path


def skeleton(config: Config, kind: str, title: str, lang: str, date: datetime, slug: str) -> str:
    """Return the file text: a draft with a pinned id, so renaming the file keeps it."""
    fields: dict = {
        "title": title,
        "type": kind,
        "date": date.isoformat(),
        "lang": lang,
        "id": derive_id(config, date, lang, slug),
        "summary": "",
        "tags": [],
        "draft": True,
    }
    if kind in ("campaign", "alert"):
        fields["expires"] = (date + timedelta(days=30)).isoformat()
        fields["action"] = {
            "label": "",
            "url": "https://",
            "deadline": (date + timedelta(days=14)).isoformat(),
            "targets": [{"name": "", "title": "", "address": ""}],
            "asks": [""],
        }
    front = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
    return f"---\n{front}---\n\nWrite the entry here. Remove `draft: true` when it is ready to publish.\n"
