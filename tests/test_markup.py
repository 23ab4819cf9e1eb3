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
