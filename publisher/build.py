"""The build: load and check everything, render, then write the output tree at once."""

from __future__ import annotations

import dataclasses
import traceback
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Callable, Iterator

import jinja2

from publisher import archive, collector, feeds, images, newsletter, redaction, stamp
from publisher.config import Config, load_config
from publisher.content import Entry, SourceFile, source_files
from publisher.issues import publication_time, published_issues, week_of
from publisher.output import DuplicatePath, publish
from publisher.problems import EditorError, Problem
from publisher.render import FileDigests, RenderCache, cache_file, load_rendered
from publisher.templates import Templates
from publisher.units import Keys, NoKeys, Unit, rendered
from publisher.website import Site


@dataclasses.dataclass(frozen=True)
class BuildResult:
    files: int
    entries: int
    warnings: int = 0



def build(root: Path, now: datetime, survey: stamp.Survey | None = None, keep: list | None = None) -> BuildResult:
    """Build the site in `root` as it stands at `now` and bring output/ up to date.

    `survey` is the inputs' stamp.survey when the caller has just taken it. A caller about to
    exit may pass a list as `keep`: the loaded site goes into it instead of being freed object
    by object when the build returns (0.04 s at 10,000 entries), and the process's exit drops it at once.
    """
    config = load_config(root)
    survey = survey or stamp.survey(config)
    redaction.refuse(config, entries=False)  # a listed name stops every build; entries are scanned as read
    templates = Templates(config, keep_compiled=True)
    with template_problems(config), collector.build_scope():
        found, signatures = survey.take_content()  # content/ walked once: for the signature, entries, other files
        with RenderCache(cache_file(config)) as cache:
            digests = FileDigests(config.path("content"), cache, signatures)  # each file's digest found once
            site = load_site(config, templates, now, found=found, digests=digests)
            keys = Keys(config, templates.folders, templates.locale, now)
            units, archive_units = unit_groups(site, templates, keys, digests, found)
            try:
                count = publish(units, config.path("output"), manifest_path(config), aside=archive_units)
            except DuplicatePath as exc:
                raise EditorError([overwrite_problem(config, exc.path)]) from None
            digests.save()
    result = BuildResult(files=count, entries=len(site.entries), warnings=len(site.warnings))
    stamp.save(config, survey.signature, now, horizon(site, keys), dataclasses.astuple(result))
    if keep is not None:
        keep.append((site, templates, digests, keys))
    return result


def horizon(site: Site, keys: Keys) -> datetime | None:
    """Return the first moment after site.now at which the output changes with nothing else changed.

    An embargo lifts, an action expires, a dated change shows, or a weekly issue falls due
    (the next publication time after now bounds them all); None if no such moment is known.
    If a template reads the clock itself any later moment may differ: then it is now.
    """
    if keys.reads_clock:
        return site.now
    now, config = site.now, site.config
    moments = [moment for entries, shown in ((site.entries, True), (site.hidden, False))
               for entry in entries for moment in _moments(entry, shown) if moment is not None and moment > now]
    weeks = (week_of(now + timedelta(days=days), config) for days in (-7, 0, 7))
    moments += [moment for moment in map(lambda week: publication_time(week, config), weeks) if moment > now]
    return min(moments, default=None)


def _moments(entry: Entry, shown: bool) -> tuple[datetime | None, ...]:
    """Return the moments at which an entry may change what is shown (None where it has none).

    A shown entry's date has passed (Entry.is_published), so only a hidden one's is a moment
    to come: 10,000 fewer dates in other zones to compare with now.
    """
    moments = (entry.updated, entry.expires) if shown else (entry.date, entry.updated, entry.expires)
    if entry.retracted or entry.action:
        moments += (entry.retracted and entry.retracted.date, entry.action and entry.action.deadline)
    return moments


def manifest_path(config: Config) -> Path:
    """Where the build records what output/ holds (never inside output/)."""
    return config.path("state") / "cache" / "output.manifest"


@contextmanager
def template_problems(config: Config) -> Iterator[None]:
    """Report a broken template as path:line: message, like any other editable input."""
    try:
        yield
    except jinja2.TemplateError as exc:
        path, line = _template_location(exc, config)
        raise EditorError([Problem(path, line, f"template error: {exc.message or exc}")]) from None


def _template_location(exc: jinja2.TemplateError, config: Config) -> tuple[str, int]:
    """Find the template file and line: syntax errors carry them; others sit in the traceback."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return _shown(exc.filename, config), exc.lineno or 1
    location = ("templates", 1)
    for frame, line in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith((".html", ".txt", ".xml", ".css")):
            location = (_shown(filename, config), line)
    return location


def _shown(filename: str, config: Config) -> str:
    path = Path(filename)
    return path.relative_to(config.root).as_posix() if path.is_relative_to(config.root) else path.as_posix()


def load_site(config: Config, templates: Templates, now: datetime, store: bool = True,
              found: list[SourceFile] | None = None, digests: FileDigests | None = None) -> Site:
    """Load, check and render every entry; raise EditorError with all problems.

    `store=False` leaves the render cache as it is (for `publisher check`, which writes nothing).
    """
    entries, warnings = load_rendered(config, store, found, digests)
    entries = tuple(with_retraction_notice(e, templates) for e in entries)
    with collector.loading():
        return Site.at(config, entries, now, warnings)


def with_retraction_notice(entry: Entry, templates: Templates) -> Entry:
    """Replace a retracted entry's body by its notice, everywhere it is shown."""
    if not entry.retracted:
        return entry
    notice = templates.render("retraction.html", entry.lang, entry=entry)
    return dataclasses.replace(entry, rendered=notice, markdown=entry.body, stored=None, summary=entry.retracted.reason)


def site_files(site: Site, templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield every output file, rendered; the content folder's own files first."""
    return rendered(site_units(site, templates, NoKeys(), None))


def site_units(site: Site, templates: Templates, keys: Keys, digests: FileDigests | None,
               found: list[SourceFile] | None = None) -> Iterator[Unit]:
    """Yield every output as a unit: the content folder's own files, feeds, newsletter, archive."""
    units, archive_units = unit_groups(site, templates, keys, digests, found)
    return chain(units, archive_units())


def unit_groups(site: Site, templates: Templates, keys: Keys, digests: FileDigests | None,
                found: list[SourceFile] | None = None) -> tuple[Iterator[Unit], Callable[[], Iterator[Unit]]]:
    """Return the units of the content folder's files, the feeds and the newsletter, and a function yielding the archive's.

    The archive holds half the work of keying a large site's units (a page per entry, tag and
    listing), so output.publish can key it in a second process beside the rest.
    """
    published_issues(site)  # the archive and the newsletter both list the issues: found once, before any fork
    units = chain(content_units(site.config, keys, digests, found), feeds.units(site, templates, keys),
                  newsletter.units(site, templates, keys))
    return units, partial(archive.units, site, templates, keys)


# What content/ may publish besides entries: images (their metadata stripped), PDFs and plain
# text. Anything else is refused: an .html or .svg file runs scripts on the site's own origin,
# and a stray .csv may be a subscriber list.
PUBLISHED_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".txt")


def content_units(config: Config, keys: Keys, digests: FileDigests | None,
                  found: list[SourceFile] | None = None) -> Iterator[Unit]:
    """Yield each non-Markdown file under content/ (images, PDFs), keyed on its bytes, at the same relative path."""
    files = _other_files(config, found)
    problems = _refusals(files, config)
    if problems:
        raise EditorError(problems)
    for file in files:
        digest = digests.of_path(file.path) if digests else b""
        yield keys.file_unit(partial(_published, file.path, file.name, config.content_dir), file.name, digest)


def _published(path: str, name: str, content_dir: str) -> list[tuple[str, bytes]]:
    return [(name, images.publish_file(Path(path), f"{content_dir}/{name}"))]


def refused_content_files(config: Config) -> list[Problem]:
    """Return a problem for each file under content/ that may not be published."""
    return _refusals(_other_files(config), config)


def _refusals(files: list[SourceFile], config: Config) -> list[Problem]:
    content = config.path("content")  # made once: 10,000 files are asked about
    return [p for p in (refusal(file, config, content) for file in files) if p]


def _other_files(config: Config, found: list[SourceFile] | None = None) -> list[SourceFile]:
    found = source_files(config.path("content")) if found is None else found
    return [file for file in found if file.suffix != ".md"]


def overwrite_problem(config: Config, rel: str) -> Problem:
    """Return the problem of a file under content/ that claims the path of a generated page."""
    return Problem(f"{config.content_dir}/{rel}", 1, "this file would overwrite a generated page; rename or move it")


def refusal(file: SourceFile, config: Config, content: Path) -> Problem | None:
    """Say why a file under `content` (config's content/) may not be published, or return None."""
    shown = f"{config.content_dir}/{file.name}"
    if file.leads_out(content):
        return Problem(shown, 1, "this is a link to a file outside content/; copy the file in if it is meant to be published")
    suffix = file.suffix
    if suffix.lower() not in PUBLISHED_SUFFIXES:
        kind = f"'{suffix}' files" if suffix else "files without an extension"
        return Problem(shown, 1, f"{kind} are not published (only {' '.join(PUBLISHED_SUFFIXES)}); "
                                 "move it out of content/")
    return None
