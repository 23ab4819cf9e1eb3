"""Jinja2 environments, one per language: strict, autoescaped, translated with Babel."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable

import babel
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import (
    BytecodeCache,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    Undefined,
    nodes,
    select_autoescape,
)
from jinja2.bccache import Bucket
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.visitor import NodeTransformer

from publisher import images
from publisher.config import Config
from publisher.locations import BUILTIN_TEMPLATES, LOCALE_DIR
from publisher.units import library_versions



class Templates:
    """Render templates for a site, in any of its languages."""

    def __init__(self, config: Config, keep_compiled: bool = False):
        """With `keep_compiled`, compiled templates are kept in the state folder for the next build."""
        self.config = config
        self.keep_compiled = keep_compiled
        self._envs: dict[str, Environment] = {}
        self._image_sizes: dict[str, tuple[int, int] | None] = {}

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
        catalog = translations(lang)
        env = TranslatingEnvironment(
            catalog,
            loader=ChoiceLoader([FileSystemLoader(str(p)) for p in self.folders]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html", "xml"], default_for_string=False),
            extensions=["jinja2.ext.i18n", SharedFragments],
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=CompiledTemplates.of(self.config, lang) if self.keep_compiled else None,
        )
        env.install_gettext_translations(catalog, newstyle=True)
        tz = self.config.tz
        locale = babel.Locale.parse(lang)  # parsed once: Babel parses a code on every call, half a date's cost
        # The same dates recur on the entry page, every listing and tag page and the feeds;
        # Babel takes tens of microseconds a date.
        env.filters["date"] = remembered(lambda d, fmt="long": format_date(d.astimezone(tz), fmt, locale=locale))
        env.filters["datetime"] = remembered(lambda d, fmt="long": format_datetime(d, fmt, tzinfo=tz, locale=locale))
        env.filters["isodate"] = remembered(lambda d: d.astimezone(tz).isoformat())
        env.filters["localized"] = lambda value: self.config.text(value, lang)
        env.globals.update(site=self.config, text_direction=text_direction(lang))
        env.globals["image_size"] = self.image_size
        return env

    def image_size(self, path: str) -> tuple[int, int] | None:
        """Return an image's (width, height) or None, looked up once per Templates, i.e. per build."""
        if path not in self._image_sizes:  # resolving the path costs more than reading the size
            self._image_sizes[path] = images.size_of(self.config, path)
        return self._image_sizes[path]


def remembered(format: Callable[..., str]) -> Callable[..., str]:
    """Remember a date filter's results for the life of its environment.

    The key holds the tzinfo and fold as well as the date: aware datetimes in different zones
    compare equal when they are the same instant, and equal ones must format alike.
    """
    results: dict[tuple, str] = {}

    def formatted(d, *args, **kwargs):
        key = (d, getattr(d, "tzinfo", None), getattr(d, "fold", 0), args, tuple(sorted(kwargs.items())))
        if key not in results:
            results[key] = format(d, *args, **kwargs)
        return results[key]

    return formatted


class TranslatingEnvironment(Environment):
    """An environment that translates constant strings, `_("Home")`, once when it compiles a template.

    Called at render time, each costs three `Context.call`s before it is even looked up, and
    listings call dozens per page; what is left at render time is the `%` of the variables.
    """

    def __init__(self, catalog: NullTranslations, **options):
        super().__init__(**options)
        self.catalog = catalog

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        # The documented hook between parsing and code generation: extract_translations, which
        # the untranslated-strings check uses, parses and so still sees every _() call.
        return super()._generate(ConstantTranslations(self.catalog).visit(source), name, filename, defer_init)


class ConstantTranslations(NodeTransformer):
    """Replace `_("text", name=value)` and `gettext(…)` by their translation and its formatting.

    The newstyle gettext of jinja2.ext.i18n returns `Markup(translation) % variables` under
    autoescape (the values escaped, the translation trusted) and `translation % variables`
    otherwise; without variables and without a '%' that is the translation itself. The
    variables are still formatted at render time, so a missing one fails as before. A template
    that binds either name itself is left alone.
    """

    NAMES = ("_", "gettext")

    def __init__(self, catalog: NullTranslations):
        # The lookup jinja2.ext.i18n makes when it installs a catalog.
        self.translate = getattr(catalog, "ugettext", None) or catalog.gettext

    def visit_Template(self, node: nodes.Template) -> nodes.Template:
        return node if _binds(node, self.NAMES) else self.generic_visit(node)

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        node = self.generic_visit(node)
        if not (isinstance(node.node, nodes.Name) and node.node.name in self.NAMES and len(node.args) == 1
                and isinstance(node.args[0], nodes.Const) and isinstance(node.args[0].value, str)
                and not node.dyn_args and not node.dyn_kwargs):
            return node
        text = self.translate(node.args[0].value)
        translation = nodes.MarkSafeIfAutoescape(nodes.Const(text, lineno=node.lineno), lineno=node.lineno)
        if not node.kwargs and "%" not in text:
            return translation
        variables = nodes.Dict([nodes.Pair(nodes.Const(k.key), k.value, lineno=k.lineno) for k in node.kwargs],
                               lineno=node.lineno)
        return nodes.Mod(translation, variables, lineno=node.lineno)


class CompiledTemplates(BytecodeCache):
    """Templates as an earlier build compiled them, kept in the state folder.

    Compiling the dozen templates a one-edit build renders took 0.07 s of its second. Jinja
    keys each on its name and file and checks its source's checksum; everything else that
    shapes the compiled code names the folder: publisher's code (the environment's options,
    its extensions), the libraries' versions, the language, and its catalog, whose
    translations are compiled in. A folder no current language uses is removed when a new
    one is made. A cache only: a file that cannot be read or written is compiled again.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def of(cls, config: Config, lang: str) -> "CompiledTemplates | None":
        """Return the cache of a language's templates, or None where the state folder cannot hold one."""
        root = config.path("state") / "cache" / "templates"
        folder = root / _compiled_name(lang)
        try:
            if not folder.is_dir():
                current = {_compiled_name(other) for other in config.languages}
                for old in (root.iterdir() if root.is_dir() else ()):
                    if old.name not in current:
                        shutil.rmtree(old, ignore_errors=True)
                folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cls(folder)

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            with open(self.folder / bucket.key, "rb") as handle:
                bucket.load_bytecode(handle)  # checks Jinja's format and the source's checksum
        except OSError:
            pass

    def dump_bytecode(self, bucket: Bucket) -> None:
        target = self.folder / bucket.key
        temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # forked renderers may write at once
        try:
            with open(temporary, "wb") as handle:
                bucket.write_bytecode(handle)
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)


def _compiled_name(lang: str) -> str:  # not remembered: a catalog may change while the scheduler runs
    from publisher.render import code_version  # render imports the markup stack; only its hash is needed

    path = po_path(lang)
    catalog = path.read_bytes() if path.is_file() else b""
    digest = hashlib.blake2b(code_version() + library_versions() + lang.encode() + b"\0" + catalog, digest_size=16)
    return f"{lang}-{digest.hexdigest()}"


class SharedFragments(Extension):
    """`{% shared key %}…{% endshared %}`: render a fragment once per key, then reuse it.

    For the parts of a page that many pages share (an archive page's head links, header and
    footer are the same on every page of a language at the same depth). The caller opts in by
    passing `key`, and vouches that it determines everything the fragment reads; with `key`
    undefined or None the fragment is rendered every time. Reuse lasts as long as the
    environment, i.e. one Templates, and a template edited and compiled again starts afresh.
    """

    tags = {"shared"}

    def __init__(self, environment: Environment):
        super().__init__(environment)
        self.fragments: dict[tuple, str] = {}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        key = parser.parse_expression()
        body = parser.parse_statements(("name:endshared",), drop_needle=True)
        # This fragment of this compilation: unique across processes too, as compiled templates
        # are kept between builds (CompiledTemplates) and loaded beside freshly compiled ones.
        fragment = nodes.Const(uuid.uuid4().hex)
        call = self.call_method("_render", [fragment, key])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, fragment: int, key, caller) -> str:
        if key is None or isinstance(key, Undefined):
            return caller()
        if (fragment, key) not in self.fragments:
            self.fragments[fragment, key] = caller()
        return self.fragments[fragment, key]


def _binds(template: nodes.Template, names: tuple[str, ...]) -> bool:
    """Tell whether a template assigns, imports or takes as a parameter any of `names`."""
    stored = any(n.name in names for n in template.find_all(nodes.Name) if n.ctx in ("store", "param"))
    imported = any(n.target in names for n in template.find_all(nodes.Import))
    from_imported = any((item[1] if isinstance(item, tuple) else item) in names
                        for n in template.find_all(nodes.FromImport) for item in n.names)
    return stored or imported or from_imported


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


@lru_cache(maxsize=None)  # CLDR's answer never changes; loading a locale's data for it took 7 ms a language a build
def text_direction(lang: str) -> str:
    """Return 'rtl' or 'ltr' for a language, from CLDR."""
    return "rtl" if babel.Locale.parse(lang).character_order == "right-to-left" else "ltr"


