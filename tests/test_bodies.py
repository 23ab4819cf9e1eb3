"""An entry body's ids and fragments put under its anchor by str.find give what the regular expressions gave."""

from __future__ import annotations

import random
import re

import pytest

from email_site import BODY
from publisher.markup import sanitize, to_html
from publisher.newsletter import _prefixed

# What the newsletter used before: the behaviour _prefixed keeps, byte for byte.
REGEXES = {'id="': re.compile(r'(\sid=")([^"]*)(")'), 'href="#': re.compile(r'(\shref="#)([^"]*)(")')}


def by_regex(html: str, opening: str, anchor: str) -> str:
    return REGEXES[opening].sub(lambda m: f"{m.group(1)}{anchor}-{m.group(2)}{m.group(3)}", html)


def test_isspace_is_the_white_space_of_regular_expressions():
    space = re.compile(r"\s")
    assert [c for c in range(0x110000) if bool(space.match(chr(c))) != chr(c).isspace()] == []


@pytest.mark.parametrize("opening", REGEXES)
def test_random_strings_of_the_pieces_that_matter(opening):
    pieces = ['id="', 'href="#', '"', " ", "\t", "\n", "\u00a0", "\u2028", "x", "i", "d", "=", "#", "h", "ref"]
    rng = random.Random(47)
    for _ in range(30_000):
        html = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert _prefixed(html, opening, "raid") == by_regex(html, opening, "raid"), repr(html)


@pytest.mark.parametrize("opening", REGEXES)
def test_a_rendered_body_with_footnotes_and_headings(opening):
    html = sanitize(to_html(BODY + "\n\nText with id=\"x\" and href=\"#y\" as words, id=\"open\n"))
    assert _prefixed(html, opening, "a-b") == by_regex(html, opening, "a-b")
    assert _prefixed(html, opening, "a-b") != html or opening not in html
