"""Plain text of the emails: wrapping as textwrap does, entry bodies written once per message."""

from __future__ import annotations

import random
import textwrap

from markupsafe import Markup

from publisher import plaintext
from publisher.plaintext import PlainText

WORDS = ["a", "the", "Basqınları", "https://example.org/a/very/long/path/that/never/breaks/anywhere/at/all/x",
         "word-with-hyphens", "—", "x" * 71, "x" * 72, "x" * 73, "Суд", "[12]", "(3)"]


def test_wrap_makes_the_lines_textwrap_makes():
    rng = random.Random(72)
    for _ in range(3000):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))
        width = rng.choice([72, 40, 10, 3])
        first, indent = rng.choice([("", ""), ("- ", "  "), ("  ", "  "), ("> ", "> "), ("1. ", "   ")])
        expected = "\n".join(textwrap.wrap(words, width, initial_indent=first, subsequent_indent=indent,
                                           break_long_words=False, break_on_hyphens=False))
        assert PlainText(width).wrap(words, indent, first) == expected, (words, width, first, indent)


def test_wrap_makes_the_lines_textwrap_makes_at_every_width_and_indent():
    rng = random.Random(3)
    for _ in range(20000):
        words = " ".join(rng.choice(["a", "bb", "ccc", "x" * 5, "y" * 9, "z" * 20, "ə", "İ"])
                         for _ in range(rng.randint(1, 12)))
        width, first, indent = rng.randint(1, 30), rng.choice(["", "- ", "1. ", " " * 10]), rng.choice(["", "   ", " " * 12])
        expected = "\n".join(textwrap.wrap(words, width, initial_indent=first, subsequent_indent=indent,
                                           break_long_words=False, break_on_hyphens=False))
        assert PlainText(width).wrap(words, indent, first) == expected, (words, width, first, indent)


def test_wrap_keeps_line_breaks_and_folds_other_whitespace():
    text = PlainText(20).wrap("one  two\nthree\u2028four\tfive", "  ", "- ")
    assert text == "- one two three\n  four five"


BODY = ('<p>Read the <a href="https://example.org/statement">statement</a> and '
        '<a href="https://example.org/appeal">the appeal</a>.</p><ul><li>First</li><li>Second</li></ul>')


def test_a_body_written_again_in_the_same_message_is_the_same_text_with_the_same_links():
    shared: dict = {}
    everyday, discreet = PlainText(bodies=shared), PlainText(bodies=shared)
    for text in (everyday, discreet):
        text.link("View this email in your browser", "https://news.example.org/web")
    first = everyday.body(Markup(BODY))
    again = discreet.body(BODY)
    assert first == again == ("Read the statement [2] and the appeal [3].\n\n- First\n- Second")
    assert everyday.links == discreet.links == ["https://news.example.org/web", "https://example.org/statement",
                                                "https://example.org/appeal"]


def test_a_body_after_other_links_is_numbered_after_them():
    shared: dict = {}
    plain = PlainText(bodies=shared)
    plain.body(BODY)
    other = PlainText(bodies=shared)
    other.ref("https://example.org/appeal")
    assert other.body(BODY) == "Read the statement [2] and the appeal [1].\n\n- First\n- Second"
    assert other.links == ["https://example.org/appeal", "https://example.org/statement"]
    assert other.body(BODY) == "Read the statement [2] and the appeal [1].\n\n- First\n- Second"


# What nh3 and our templates write, and what they never write (those go to html.parser).
FRAGMENTS = [
    '<p>Police raided a party in <a href="https://news.example.org/en/x/" title="A &amp; B">Baku</a>.</p>',
    '<h2 id="raid-next">Next steps</h2>\n<ol start="3">\n<li><strong>Release</strong> them;</li>\n<li>Stop.</li>\n</ol>',
    '<blockquote>\n<p>“Our group” — wrote <em>R. N.</em></p>\n</blockquote>\n<hr>\n<p>a<br>b<br/>c</p>',
    '<pre><code>if a &lt; b &amp;&amp; c &gt; d:\n    print("&quot;x&quot;")\n</code></pre>',
    '<table>\n<thead>\n<tr>\n<th>Date</th>\n<th>Court</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>1 May</td>'
    '<td>Baku &#8211; Grave Crimes</td>\n</tr>\n</tbody>\n</table>',
    '<p>Note<sup id="raid-fnref:1"><a class="footnote-ref" href="#raid-fn:1">1</a></sup></p>\n<div class="footnote">'
    '<ol><li id="raid-fn:1"><p>Source. <a class="footnote-backref" href="#raid-fnref:1">&#8617;</a></p></li></ol></div>',
    '<p>Unclosed <em>emphasis</p><p>stray end</strong> tag</p><p/>empty<img src="/x.png" alt="A &quot;b&quot;" />',
    '<dl><dt>Term</dt><dd>Meaning &nbsp;here</dd></dl>text after &amp; without a tag',
    '',
    'Just text, 5 &gt; 3.',
]
LEFT_TO_HTML_PARSER = [
    '<p>A comment <!-- x --> here</p>',
    '<P>Upper case</P>',
    "<p class='single'>quotes</p>",
    '<p>a <3 b</p>',
    '<script>if (a < b) {}</script>',
    '<a href=unquoted>x</a>',
    '<p>x</p class="y">',
]


def html_parser_tree(fragment: str):
    builder = plaintext._TreeBuilder()
    builder.feed(fragment)
    builder.close()
    return builder.root


def test_serialized_html_parses_as_html_parser_parses_it():
    for fragment in FRAGMENTS:
        assert plaintext._parse_serialized(fragment) == html_parser_tree(fragment), fragment
    for fragment in LEFT_TO_HTML_PARSER:
        assert plaintext._parse_serialized(fragment) is None, fragment
        assert plaintext.parse(fragment) == html_parser_tree(fragment), fragment
