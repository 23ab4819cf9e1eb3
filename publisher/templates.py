"""Jinja2 environments, one per language: strict, autoescaped, translated with Babel."""

from __future__ import annotations

import io
from functools import cached_property
from pathlib import Path

import babel
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    select_autoescape,
)

from publisher import images
from publisher.config import Config
from publisher.locations import BUILTIN_TEMPLATES, LOCALE_DIR



class Templates:
    """Render templates for a site, in any of its languages."""

    def __init__(self, config: Config):
        self.config = config
        self._envs: dict[str, Environment] = {}

    def get(self, name: str, lang: str) -> Template:
        return self.env(lang).get_template(name)

    def render(self, name: str, lang: str, **context) -> str:
        return self.get(name, lang).render(lang=lang, **context)

    def env(self, lang: str) -> Environment:
        if lang not in self._envs:
            self._envs[lang] = self._make_env(lang)
        return self._envs[lang]

    @cached_property
    def folders(self) -> list[Path]:
        """Return the template folders: the site's own first, then the built-in ones."""
        site = self.config.path("templates")
        return [p for p in dict.fromkeys([site, BUILTIN_TEMPLATES]) if p.is_dir()]

    @property
    def locale(self) -> Path:
        """Return the folder of the message catalogs."""
        return LOCALE_DIR

    def _make_env(self, lang: str) -> Environment:
        env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(p)) for p in self.folders]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html", "xml"], default_for_string=False),
            extensions=["jinja2.ext.i18n"],
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(translations(lang), newstyle=True)
        tz = self.config.tz
        env.filters["date"] = lambda d, fmt="long": format_date(d.astimezone(tz), fmt, locale=lang)
        env.filters["datetime"] = lambda d, fmt="long": format_datetime(d, fmt, tzinfo=tz, locale=lang)
        env.filters["isodate"] = lambda d: d.astimezone(tz).isoformat()
        env.filters["localized"] = lambda value: self.config.text(value, lang)
        env.globals.update(site=self.config, text_direction=text_direction(lang))
        env.globals["image_size"] = lambda path: images.size_of(self.config, path)  # (width, height) or None
        return env


def po_path(lang: str) -> Path:
    """Return where a language's message catalog lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def read_catalog(lang: str) -> Catalog | None:
    """Read a language's catalog, or None when there is none."""
    path = po_path(lang)
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def translations(lang: str) -> NullTranslations:
    """Load a language's catalog from its .po file (compiled in memory; no binaries in git)."""
    catalog = read_catalog(lang)
    if catalog is None:
        return NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def text_direction(lang: str) -> str:
    """Return 'rtl' or 'ltr' for a language, from CLDR."""
    return "rtl" if babel.Locale.parse(lang).character_order == "right-to-left" else "ltr"


