"""Markdown rendering keeps no state from one text to the next."""

from __future__ import annotations

import pytest

from publisher.markup import render_markdown

PARAGRAPHS = "First paragraph.\n\n- a list\n- of two\n\nLast paragraph."


@pytest.mark.parametrize("failing, error", [
    ("- " * 1000 + "x", RecursionError),  # fails deep in the list parser
    ("[^]:[^n]:\n[^x]:", RuntimeError),  # a Python-Markdown footnotes bug
])
def test_a_text_that_fails_to_render_does_not_change_the_next_ones(failing, error):
    expected = render_markdown(PARAGRAPHS)
    assert expected.html.startswith("<p>First paragraph.</p>")
    with pytest.raises(error):
        render_markdown(failing)
    assert render_markdown(PARAGRAPHS) == expected


def test_relink_does_what_the_regular_expression_did():
    import random

    from publisher.markup import _SITE_LINK, relink

    pieces = ['href="/', 'src="/', '="/', "/", '"', "=", " ", "\t", "\u00a0", "x", "h", "ref", "s", "rc", "//"]
    rng = random.Random(55)
    for _ in range(50_000):
        html = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for prefix in ("../../", "https://news.example.org/"):
            assert relink(html, prefix) == _SITE_LINK.sub(lambda m: m.group(1) + prefix, html), repr(html)
