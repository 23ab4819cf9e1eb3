"""`publisher check`: every problem in config and content, errors and warnings, nothing written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from publisher import redaction
from publisher.build import (
    load_site,
    overwrite_problem,
    refused_content_files,
    site_files,
)
from publisher.catalogs import missing_translations
from publisher.config import load_config
from publisher.lint import heavy_images, lint_site, long_subjects
from publisher.problems import EditorError, Problem, sort_key
from publisher.templates import Templates
from publisher.website import Site


def check(root: Path, now: datetime) -> list[Problem]:
    """Return every problem of the site at `root`, sorted; never raise for editor mistakes."""
    try:
        config = load_config(root)
    except EditorError as error:
        return list(error.problems)
    problems: list[Problem] = refused_content_files(config)
    try:
        # Names in file names, copied files, config and templates; entries are scanned as they are read.
        problems += redaction.scan(config, entries=False)
    except EditorError as error:
        problems += error.problems
    try:
        templates = Templates(config)
        site = load_site(config, templates, now, store=False)
        files = built_files(site, templates)
    except EditorError as error:
        return sorted({*problems, *error.problems}, key=sort_key)  # a damaged list is found by both
    problems += site.warnings
    problems += lint_site(site, set(files))
    problems += heavy_images(files, config)
    problems += long_subjects(files, site.entries, config)
    problems += missing_translations(templates)
    return sorted(problems, key=sort_key)


def built_files(site: Site, templates: Templates) -> dict[str, bytes]:
    """Build every file in memory; a content file that claims a generated page is an error, as in build."""
    files: dict[str, bytes] = {}
    for path, data in site_files(site, templates):
        if path in files:
            raise EditorError([overwrite_problem(site.config, path)])
        files[path] = data
    return files
