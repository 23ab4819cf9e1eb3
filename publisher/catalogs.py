"""Find template strings that a language's message catalog does not translate.

Templates are written in English; a string missing from publisher/locale/LANG/ falls back
to English when rendered, and `publisher check` warns about it at the template's line.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from jinja2 import TemplateSyntaxError

from publisher.problems import Problem
from publisher.templates import LOCALE_DIR, Templates, po_path, read_catalog

SOURCE_LANGUAGE = "en"  # the language templates are written in
SUFFIXES = (".html", ".txt", ".xml")


def missing_translations(templates: Templates) -> list[Problem]:
    """Return a warning for each template string some site language cannot translate."""
    config = templates.config
    languages = [lang for lang in config.languages if lang.split("_")[0] != SOURCE_LANGUAGE]
    catalogs = {lang: read_catalog(lang) for lang in languages}
    problems = [Problem(_show(po_path(lang), config.root), 1,
                        f"no message catalog for '{lang}': its readers see every template string in English",
                        warning=True)
                for lang, found in catalogs.items() if found is None]
    env = templates.env(config.default_language)
    for path in template_files(templates):
        try:
            messages = list(env.extract_translations(path.read_text(encoding="utf-8")))
        except (TemplateSyntaxError, UnicodeDecodeError, OSError):
            continue  # the build reports broken templates itself
        for line, _function, message in messages:
            msgid = message if isinstance(message, str) else next((m for m in message if m), None)
            if not msgid:
                continue
            missing = [lang for lang, found in catalogs.items() if found is not None and not _translated(found, msgid)]
            if missing:
                problems.append(Problem(_show(path, config.root), line,
                                        f"no {' or '.join(missing)} translation for {msgid!r}; "
                                        f"those readers see it in English", warning=True))
    return problems


def template_files(templates: Templates) -> list[Path]:
    """Return the templates in effect: the site's own, then the built-in ones it does not replace."""
    seen: dict[str, Path] = {}
    for folder in templates.folders:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and path.suffix in SUFFIXES and not name.startswith("static/"):
                seen.setdefault(name, path)
    return list(seen.values())


def _translated(found: Catalog, msgid: str) -> bool:
    message = found.get(msgid)
    if message is None or message.fuzzy:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def _show(path: Path, root: Path) -> str:
    """Name a file relative to the site, or to the package for the built-in templates."""
    path = path.resolve()
    for base in (root.resolve(), LOCALE_DIR.parent.parent):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return str(path)
