"""The weekly issue and alert emails: HTML, plain text, .eml and a web copy of each.

Every message is rendered from Jinja templates in templates/email/, its CSS inlined by
css-inline (only the @media rules for small screens and dark mode stay in a <style>); the
web copy, read in a browser, keeps its stylesheet whole.
An issue whose HTML would pass the size budget (newsletter.max_html_kb, under Gmail's
~102 KB clip) shows its longest entries as summaries linking to the web copy until it fits.
The discreet copy differs in its sender, title and preheader only: it is filled in to the
same rendering as the everyday copy (see Email), and every entry body is read, rewritten
and turned into text once per message (see Bodies).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache, partial
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

import css_inline
from babel.dates import format_date, format_interval, format_time, get_timezone_gmt
from markupsafe import Markup

from publisher import budget, mail
from publisher.config import CONFIG_NAME, load_config
from publisher.content import Entry
from publisher.issues import Issue, find_issue, issue_dir, published_issues
from publisher.markup import relink
from publisher.plaintext import WIDTH, PlainText
from publisher.problems import EditorError, Problem
from publisher.templates import BUILTIN_TEMPLATES, Templates
from publisher.units import Keys, Unit
from publisher.urls import absolute, entry_page, relative, root_prefix
from publisher.website import Site

MODES = ("full", "summary", "title")  # how much of an entry an email shows, most first
_INLINER = css_inline.CSSInliner(keep_at_rules=True, keep_link_tags=True, load_remote_stylesheets=False)
_IMAGE = re.compile(r"<img\b[^>]*>")
_ATTRIBUTE = re.compile(r'\s(src|alt)="([^"]*)"')
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Message:
    """One built email: what delivery sends and what the build writes."""

    kind: str  # "issue" or "alert"
    key: str  # the week (2026-W47) of an issue, the slug of an alert
    lang: str
    folder: str  # output folder: newsletter/en/2026-W47/ or alerts/en/<slug>/
    subject: str
    html: str  # the email's HTML (inlined CSS)
    text: str  # its plain-text alternative
    eml: bytes  # the MIME message, CRLF, without To
    web: str  # the web copy: the same layout, relative links, no preheader
    discreet_eml: bytes = b""  # the same news behind a neutral sender, subject, title and preview

    def files(self) -> Iterator[tuple[str, bytes]]:
        name = "issue" if self.kind == "issue" else "alert"
        yield self.folder + "index.html", self.web.encode("utf-8")
        yield self.folder + f"{name}.txt", self.text.encode("utf-8")
        yield self.folder + f"{name}.eml", self.eml
        yield self.folder + f"{name}-discreet.eml", self.discreet_eml


def files(site: Site, templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield the files of every issue that has gone out or is due, and of every published alert."""
    for message in messages(site, templates):  # one at a time: all of them at once is hundreds of MB
        yield from message.files()


def units(site: Site, templates: Templates, keys: Keys) -> Iterator[Unit]:
    """Yield each issue and alert (all its files) as a unit keyed on what it is built from."""
    alerts = alerts_of(site)  # first: it reports alerts that would share a folder
    for issue in published_issues(site):
        # Not the whole Issue: its `archived` ids (thousands, in a long archive) only guide the ledger.
        yield keys.unit(partial(_files_of, issue_message, site, templates, issue), "issue", issue.lang, issue.number,
                        issue.week, issue.starts, issue.entries, issue.sent, issue.publishes)
    for entry in alerts:
        yield keys.unit(partial(_files_of, alert_message, site, templates, entry), "alert", entry)


def _files_of(build: Callable[..., Message], *args) -> list[tuple[str, bytes]]:
    return list(build(*args).files())


def messages(site: Site, templates: Templates) -> Iterator[Message]:
    """Build the issues (sent or due at site.now), oldest first, then the alerts, one by one."""
    alerts = alerts_of(site)  # first: it reports alerts that would share a folder
    for issue in published_issues(site):
        yield issue_message(site, templates, issue)
    for entry in alerts:
        yield alert_message(site, templates, entry)


def alerts_of(site: Site) -> tuple[Entry, ...]:
    """Return the published alerts, oldest first; raise EditorError if two share a folder."""
    alerts = sorted((e for e in site.entries if e.type == "alert"), key=lambda e: (e.date, e.path))
    seen: dict[str, Entry] = {}
    problems = []
    for entry in alerts:
        first = seen.setdefault(alert_dir(entry), entry)
        if first is not entry:
            problems.append(Problem(entry.path, 1, f"alert email folder {alert_dir(entry)} is already claimed by "
                                                   f"{first.path}; give one of the alerts another file name"))
    if problems:
        raise EditorError(problems)
    return tuple(alerts)


def alert_dir(entry: Entry) -> str:
    """Return the output folder of an alert's email, e.g. alerts/en/write-to-the-president/."""
    return f"alerts/{entry.lang}/{entry.slug}/"


# Issues --------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A part of an issue under one heading."""

    kind: str  # alert, campaign or update: the template names it
    entries: tuple[Entry, ...]


def issue_message(site: Site, templates: Templates, issue: Issue) -> Message:
    """Render one issue: its email within the size budget, plain text, .eml and web copy."""
    config, lang = site.config, issue.lang
    folder = issue_dir(issue)
    moment = issue.publishes
    period = format_interval(issue.starts.date(), (issue.starts + timedelta(days=6)).date(), skeleton="yMMMMd",
                             locale=lang)
    subject = _render_subject(templates, lang, kind="issue", issue=issue, headline=_headline(issue))
    context = dict(kind="issue", issue=issue, sections=_sections(issue, moment), period=period, title=subject,
                   preheader=issue.entries[0].summary if issue.entries else "")
    bodies = Bodies()
    pages = lambda modes: _pages(site, templates, "email/issue.html", lang, folder, issue.entries, moment, context,
                                 modes, bodies)
    fillable = _fillable(templates)
    page = tuple(e for section in context["sections"] for e in section.entries) if fillable else None
    emails = Emails(pages, _everyday(site, lang, context), fillable)
    modes, email, html = _fit(issue.entries, emails, config.newsletter.max_html_kb * 1024, bodies, page)
    envelope = _envelope(config, lang, subject, moment, config.newsletter.list_id or f"weekly.{config.host}",
                         "issue", lang, issue.week)
    return _message(site, templates, envelope, Rendering("issue", issue.week, lang, folder, issue.entries, moment,
                                                         context, modes, html, email, bodies))


def _sections(issue: Issue, moment: datetime) -> tuple[Section, ...]:
    """Group an issue's entries: open alerts, campaigns with open actions, then the rest."""
    groups: dict[str, list[Entry]] = {"alert": [], "campaign": [], "update": []}
    for entry in issue.entries:
        kind = entry.type if entry.type in ("alert", "campaign") and entry.action_open(moment) else "update"
        groups[kind].append(entry)
    return tuple(Section(k, tuple(v)) for k, v in groups.items() if v)


def _headline(issue: Issue) -> str:
    return issue.entries[0].title if issue.entries else ""


# Alerts --------------------------------------------------------------------------


def alert_message(site: Site, templates: Templates, entry: Entry) -> Message:
    """Render one alert's own email, as it stands when it is published, and its web copy."""
    config, lang = site.config, entry.lang
    folder = alert_dir(entry)
    moment = entry.date
    word = config.text(config.newsletter.alert_word, lang)
    prefix = "" if _folded(entry.title).startswith(_folded(word)) else f"{word}: "
    subject = _render_subject(templates, lang, kind="alert", entry=entry, alert_prefix=prefix)
    context = dict(kind="alert", entry=entry, alert_word=word, title=subject, preheader=entry.summary)
    bodies = Bodies()
    pages = lambda modes: _pages(site, templates, "email/alert.html", lang, folder, (entry,), moment, context,
                                 modes, bodies)
    envelope = _envelope(config, lang, subject, moment, config.newsletter.alerts_list_id or f"alerts.{config.host}",
                         "alert", lang, entry.slug, entry.id)
    emails = Emails(pages, _everyday(site, lang, context), _fillable(templates))
    modes, email, html = _fit((entry,), emails, config.newsletter.max_html_kb * 1024, bodies)
    return _message(site, templates, envelope, Rendering("alert", entry.slug, lang, folder, (entry,), moment,
                                                         context, modes, html, email, bodies))


@dataclass(frozen=True)
class Rendering:
    """What an issue or alert renders from, and its email HTML as it fits the budget."""

    kind: str
    key: str
    lang: str
    folder: str
    entries: tuple[Entry, ...]
    moment: datetime
    context: dict
    modes: dict
    html: str  # the everyday copy's email HTML
    email: Email  # the email as rendered, from which the discreet copy is made too
    bodies: Bodies  # the entry bodies every copy of the message shows


def _message(site: Site, templates: Templates, envelope: mail.Envelope, r: Rendering) -> Message:
    """Add the plain text, the web copy and both .eml files (everyday and discreet) to a rendered email."""
    config, lang = site.config, r.lang
    view = _view(site, lang, r.folder, r.moment, r.entries, r.modes, r.bodies, web=False)
    web = _web_html(site, templates, f"email/{r.kind}.html", lang, r.folder, r.entries, r.context, r.bodies)
    sender, subject = config.text(config.newsletter.discreet_from_name, lang), config.text(config.newsletter.discreet_subject, lang)
    # Discreet: whatever a lock screen or an inbox list shows (sender, subject, preview) is neutral.
    discreet = dict(discreet=True, sender=sender, title=subject, preheader=subject)
    discreet_html = r.email.html(discreet)
    text, discreet_text = _texts(site, templates, f"email/{r.kind}.txt", lang, view, r.context, discreet)
    discreet_envelope = dataclasses.replace(envelope, subject=subject, from_name=sender,
                                            message_id=mail.message_id(config, "", envelope.message_id))
    eml, discreet_eml = mail.compose_copies(config, [(envelope, text, r.html),
                                                     (discreet_envelope, discreet_text, discreet_html)])
    return Message(r.kind, r.key, lang, r.folder, envelope.subject, r.html, text, eml, web, discreet_eml)


def _envelope(config, lang: str, subject: str, moment: datetime, list_id: str, *id_parts: str) -> mail.Envelope:
    return mail.Envelope(
        subject=subject, from_name=config.text(config.newsletter.from_name, lang) or config.text(config.title, lang),
        date=moment, message_id=mail.message_id(config, *id_parts), list_id=list_id,
        list_name=config.text(config.title, lang), lang=lang)


# Rendering -----------------------------------------------------------------------


@dataclass
class View:
    """What templates ask of one rendering: links, entry bodies and how much of each to show."""

    site: Site
    lang: str
    folder: str
    moment: datetime  # actions are open or closed as of this moment
    web: bool
    modes: dict[str, str] = field(default_factory=dict)
    anchors: dict[str, str] = field(default_factory=dict)
    bodies: Bodies = field(default_factory=lambda: Bodies())

    @property
    def page(self) -> str:
        return self.folder + "index.html"

    def entry_url(self, entry: Entry) -> str:
        target = entry_page(entry, self.site.config)
        return relative(self.page, target) if self.web else absolute(self.site.config, target)

    def more_url(self, entry: Entry) -> str:
        return f"{absolute(self.site.config, self.page)}#{self.anchor(entry)}"

    def anchor(self, entry: Entry) -> str:
        return self.anchors.get(entry.id, entry.slug)

    def when(self, moment: datetime) -> str:
        """Return a date and time for readers anywhere: 'October 9, 2017, 11:59 PM (GMT+04:00)'."""
        return _when(moment, moment.tzinfo, moment.fold, self.site.config.tz, self.lang)

    def upper(self, text: str) -> str:
        """Uppercase as the language does: Azerbaijani (like Turkish) dots its capital İ."""
        if self.lang.split("_")[0] in ("az", "tr"):
            text = text.replace("i", "İ")
        return text.upper()

    def mode(self, entry: Entry) -> str:
        return self.modes.get(entry.id, "full")

    def body(self, entry: Entry) -> Markup:
        """Return an entry's HTML for this message: links resolved, ids unique, images as links."""
        prefix = root_prefix(self.page) if self.web else self.site.config.base_url
        return self.bodies.body(entry, prefix, self.anchor(entry))


@lru_cache(maxsize=4096)  # an alert's date and deadline recur in its email, its issue and their texts
def _when(moment: datetime, tzinfo, fold: int, tz, lang: str) -> str:
    """View.when, remembered; the key holds the tzinfo and fold too, as templates.remembered's does."""
    local = moment.astimezone(tz)
    return (f"{format_date(local, 'long', locale=lang)}, {format_time(local, 'short', tzinfo=tz, locale=lang)} "
            f"({get_timezone_gmt(local, 'long', locale=lang)})")


class Bodies:
    """The entry bodies of one message, each entry's HTML read once and rewritten once per copy.

    A message shows the same entries in its email (again if it is over the budget), its
    discreet twin, its plain text and its web copy; only the links of the web copy differ.
    """

    def __init__(self) -> None:
        self._sources: dict[str, str] = {}
        self._bodies: dict[tuple[str, str, str], Markup] = {}

    def source(self, entry: Entry) -> str:
        """Return the entry's sanitised HTML (read once: it may come from a store)."""
        if entry.id not in self._sources:
            self._sources[entry.id] = entry.html
        return self._sources[entry.id]

    def body(self, entry: Entry, prefix: str, anchor: str) -> Markup:
        """Return the body with site links under `prefix`, ids and fragments under `anchor`, images as links."""
        key = (entry.id, prefix, anchor)
        if key not in self._bodies:
            html = relink(self.source(entry), prefix)
            html = _prefixed(_prefixed(html, 'id="', anchor), 'href="#', anchor)
            self._bodies[key] = Markup(_IMAGE.sub(_image_link, html))  # sanitised by markup.sanitize when loaded
        return self._bodies[key]


def _prefixed(html: str, opening: str, anchor: str) -> str:
    """Put `anchor-` before each quoted value that opens with `opening` after white space (an id, a fragment).

    What re.sub(r'(\\s' + opening + ')([^"]*)(")', ...) does, by str.find: the regex tried every
    character of every body, twice per copy of a message. tests/test_bodies.py compares the two.
    """
    parts, copied = [], 0
    position = html.find(opening)
    while position != -1:
        end = html.find('"', position + len(opening))  # the closing quote
        if end == -1:
            break  # nor does any later opening have one
        if position and html[position - 1].isspace():  # isspace() is re's \s, character for character
            value = position + len(opening)
            parts += (html[copied:value], anchor, "-")
            copied = value
            position = html.find(opening, end + 1)  # the match ends at its closing quote
        else:
            position = html.find(opening, position + 1)
    parts.append(html[copied:])
    return "".join(parts)


def _image_link(match: re.Match) -> str:
    """Replace an image by a link to it: nothing in an email loads by itself, not even from us."""
    attributes = dict(_ATTRIBUTE.findall(match.group(0)))
    return f'<a href="{attributes.get("src", "")}">[{attributes.get("alt") or "image"}]</a>'


def _view(site: Site, lang: str, folder: str, moment: datetime, entries, modes: dict[str, str], bodies: Bodies,
          web: bool) -> View:
    anchors: dict[str, str] = {}
    for index, entry in enumerate(entries, 1):
        anchors[entry.id] = entry.slug if entry.slug not in anchors.values() else f"{entry.slug}-{index}"
    return View(site, lang, folder, moment, web, modes, anchors, bodies)


def _render(site: Site, templates: Templates, name: str, lang: str, view: View, context: dict) -> str:
    config = site.config
    values = dict(
        view=view, web=view.web, discreet=False, sender=config.text(config.title, lang),
        web_url=absolute(config, view.page), canonical=absolute(config, view.page),
        home_url=relative(view.page, f"{lang}/index.html") if view.web else absolute(config, f"{lang}/index.html"),
        unsubscribe_url=mail.unsubscribe_url(config))
    return templates.render(name, lang, **(values | context))


def _pages(site, templates, name, lang, folder, entries, moment, context, modes, bodies) -> Callable[[dict], str]:
    """Return a function rendering the email HTML of one mix of modes for the values of a copy (see Email)."""
    view = _view(site, lang, folder, moment, entries, modes, bodies, web=False)
    return lambda copy: _inline(_render(site, templates, name, lang, view, dict(context, **copy)))


@dataclass(frozen=True)
class Emails:
    """Makes a message's Email for any mix of modes."""

    pages: Callable[[dict], Callable[[dict], str]]  # modes -> (values of a copy -> HTML), as _pages returns
    everyday: dict  # discreet, sender, title, preheader of the everyday copy
    fillable: bool  # whether the copies can be filled in to one rendering (see _fillable)

    def __call__(self, modes: dict[str, str]) -> Email:
        """Render the email of a mix once, with the slots in place when the copies can be filled in."""
        render = self.pages(modes)
        return Email(render, self.everyday, render(_SLOTS) if self.fillable else None)

    def assembled(self, page_ids: list[str], before: Email, after: Email, shortened: set[str],
                  modes: dict[str, str]) -> Email | None:
        """Return the Email of a mix put together from the blocks of two renderings' stencils, as
        budget.fit predicts its HTML (it checks the result against its prediction), or None."""
        if before.stencil is None or after.stencil is None:
            return None
        old, new = budget.cut(before.stencil, len(page_ids)), budget.cut(after.stencil, len(page_ids))
        if old is None or new is None or (old.head, old.tail) != (new.head, new.tail):
            return None
        return Email(self.pages(modes), self.everyday, budget.predicted(old, new, page_ids, shortened))


def _everyday(site: Site, lang: str, context: dict) -> dict:
    return dict(discreet=False, sender=site.config.text(site.config.title, lang), title=context["title"],
                preheader=context["preheader"])


def _web_html(site, templates, name, lang, folder, entries, context, bodies) -> str:
    """Render the web copy. Its CSS stays in <head>, as a browser needs it: inlined on every element, as
    email clients need it, it made a long issue's web copy 321 KB, not 118 KB (when the font stack was
    still inlined on every text element; see email/layout.html)."""
    view = _view(site, lang, folder, site.now, entries, {}, bodies, web=True)
    return _render(site, templates, name, lang, view, context)


def _inline(html: str) -> str:
    """Inline the CSS; css-inline puts the kept @media rules first, so bring the charset back before them."""
    inlined = _INLINER.inline(html)
    charset = '<meta charset="utf-8">'
    if charset in inlined:
        inlined = inlined.replace(charset, "", 1).replace("<head>", "<head>" + charset, 1)
    return inlined


def _texts(site, templates, name, lang, view: View, context: dict, discreet: dict) -> tuple[str, str]:
    """Return the plain text of the everyday and the discreet copy, which differ only in the sender's name."""
    senders = (site.config.text(site.config.title, lang), discreet["sender"])
    if _fillable(templates) and all(_one_line(sender) for sender in senders):
        stencil = _text(site, templates, name, lang, view, dict(context, sender=_SLOTS["sender"]), {})
        if stencil.count(_SLOT_MARK) == stencil.count(_SLOTS["sender"]):
            return stencil.replace(_SLOTS["sender"], senders[0]), stencil.replace(_SLOTS["sender"], senders[1])
    texts: dict = {}  # entry bodies as text, written for the everyday copy and read again for the discreet one
    return (_text(site, templates, name, lang, view, context, texts),
            _text(site, templates, name, lang, view, dict(context, **discreet), texts))


def _one_line(value: str) -> bool:
    """Tell whether text.wrap() leaves a value as it is: one non-empty line of single-spaced words."""
    return bool(value) and value == " ".join(value.split()) and len(value) <= WIDTH and _SLOT_MARK not in value


def _text(site, templates, name, lang, view: View, context: dict, bodies: dict) -> str:
    text = _render(site, templates, name, lang, view, dict(context, text=PlainText(bodies=bodies)))
    lines = [line.rstrip() if line != "-- " else line for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"


def _fit(entries: tuple[Entry, ...], emails: Emails, limit: int, bodies: Bodies,
         page: tuple[Entry, ...] | None = None) -> tuple[dict[str, str], Email, str]:
    """Return how much of each entry to show, the email and its everyday HTML, shrinking the longest entries
    first until it fits.

    With `page`, the entries in the order the built-in templates show them, the steps are predicted from one
    rendering per mode, and the email of the step chosen put together from them (see budget.fit); otherwise
    each step is rendered.
    """
    order = [e.id for e in sorted(entries, key=lambda e: (-len(bodies.source(e)), e.path))]
    if page is None:
        return budget.fit_slowly(budget.mixes(order, MODES), emails, limit)
    page_ids = [e.id for e in page]
    return budget.fit(page_ids, order, MODES, emails, limit, partial(emails.assembled, page_ids))


# The copies of a message ---------------------------------------------------------

# The everyday and the discreet copy of an email differ in three values only; the email is
# rendered and inlined once with these markers in their place, then each copy fills them in.
_SLOT_MARK = "\ue000"  # private use: no text of ours contains it
_SLOTS = {name: f"\ue000{name}\ue001" for name in ("sender", "title", "preheader")}
_SLOT = re.compile("\ue000(sender|title|preheader)\ue001")


class Email:
    """A message's email HTML, rendered once, from which the everyday and the discreet copy are made."""

    def __init__(self, render: Callable[[dict], str], everyday: dict, stencil: str | None):
        self._render = render  # (values of a copy) -> HTML, the slow way
        self._everyday = everyday  # discreet, sender, title, preheader of the everyday copy
        self.stencil = stencil  # the HTML with the slots in place, if the copies can be filled in
        # The HTML cut where the slots were: text, slot name, text, slot name, ..., text.
        self._pieces = _SLOT.split(stencil) if stencil is not None else []
        if any(_SLOT_MARK in piece for piece in self._pieces[::2]):  # a mark we did not put there
            self._pieces = []

    def html(self, copy: dict | None = None) -> str:
        """Return the HTML of the everyday copy, or of the copy with these discreet, sender, title and preheader."""
        copy = dict(self._everyday, **(copy or {}))
        if not self._pieces or not all(_fills(copy[name]) for name in _SLOTS):
            return self._render(copy)
        pieces = self._pieces[:]
        pieces[1::2] = [_as_inlined(copy[name]) for name in pieces[1::2]]
        return "".join(pieces)


def _fillable(templates: Templates) -> bool:
    """Tell whether the email templates are the built-in ones.

    They show the sender, title and preheader as text only (the plain text: the sender, through
    text.wrap), never transformed or tested, and nothing in them depends on `discreet`: so
    filling those values into one rendering equals rendering each copy, which
    tests/test_newsletter_copies.py checks. A site that overrides any email template has each
    copy rendered in full.
    """
    return not any((folder / "email").exists() for folder in templates.folders if folder != BUILTIN_TEMPLATES)


def _fills(value) -> bool:
    """Tell whether a value can be filled in as text: not markup, which Jinja would not escape, nor CR or NUL,
    which the HTML parser changes, nor a mark of ours."""
    return type(value) is str and not any(char in value for char in ("\r", "\x00", _SLOT_MARK))


def _as_inlined(value: str) -> str:
    """Return text as Jinja escapes it and css-inline then writes it out again: only & < > and no-break space escaped."""
    return value.replace("&", "&amp;").replace("\u00a0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _folded(text: str) -> str:
    """Fold case so TƏCİLİ matches Təcili ('İ' folds to 'i' plus a combining dot)."""
    return unicodedata.normalize("NFKD", text.casefold()).replace("\u0307", "")


def _render_subject(templates: Templates, lang: str, **context) -> str:
    subject = templates.render("email/subject.txt", lang, **context)
    return " ".join(subject.split())


# Previews ------------------------------------------------------------------------


def preview_issue(root: Path, week: str, lang: str | None, now: datetime) -> Message:
    """Build one week's issue in one language as the site stands at `now`, sent or not."""
    from publisher.build import load_site  # the build imports this module for its files

    config = load_config(root)
    lang = lang or config.default_language
    if lang not in config.languages:
        raise EditorError([Problem(CONFIG_NAME, 1, f"'{lang}' is not one of the site's languages "
                                                   f"({', '.join(config.languages)})")])
    templates = Templates(config)
    site = load_site(config, templates, now)
    issue = find_issue(site, week, lang)
    if issue is None:
        raise EditorError([Problem(config.content_dir, 1, f"no issue for {week} in '{lang}': nothing published "
                                                          f"that week goes out in it (as of {now.isoformat()})")])
    return issue_message(site, templates, issue)


def write_issue(root: Path, week: str, lang: str | None, now: datetime, out: Path) -> list[Path]:
    """Write one issue's index.html, issue.txt and issue.eml into `out`, never into output/."""
    message = preview_issue(root, week, lang, now)
    config = load_config(root)
    out = out.resolve()
    if out.is_relative_to(config.path("output").resolve()):
        raise EditorError([Problem(CONFIG_NAME, 1, f"--out {out} is inside the output folder, which only "
                                                   f"'publisher build' writes; choose another folder")])
    written = []
    for rel, data in message.files():
        target = out / Path(rel).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written
