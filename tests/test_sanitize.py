"""No XSS vector written by an editor survives into any output, however it is encoded."""

from __future__ import annotations

import pytest

from conftest import entry_text
from publisher.markup import render_markdown, relink
from safety import html_fragments, unsafe_parts

VECTORS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">a</a>',
    '<a href="JaVaScRiPt:alert(1)">a</a>',
    '<a href="jav&#x09;ascript:alert(1)">a</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">a</a>',
    '<a href=" javascript:alert(1)">a</a>',
    '<a href="javascript&colon;alert(1)">a</a>',
    "[a](javascript:alert(1))",
    "[a](JAVASCRIPT:alert(1))",
    "[a](&#x6A;avascript:alert(1))",
    "[a](vbscript:msgbox(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![a](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![a](javascript:alert(1))",
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="x.swf"></object>',
    '<embed src="x.swf">',
    '<form action="https://evil.example/"><input name=a><button>go</button></form>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<body onload=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    '<base href="https://evil.example/">',
    "<details open ontoggle=alert(1)>x</details>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    '<img src="https://tracker.example/pixel.gif" width="1" height="1" alt="">',
    "![pixel](https://tracker.example/p.gif)",
    '<a href="https://example.org/" onclick="alert(1)">a</a>',
    "<scr<script>ipt>alert(1)</script>",
    "<<script>script>alert(1)</script>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<img src="/ok.png" onerror="alert(1)">',
    "<textarea><script>alert(1)</script></textarea>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<a href="java\nscript:alert(1)">a</a>',
    '<img src="//evil.example/x.png">',
]


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_is_neutralised_in_rendered_html(vector):
    html = render_markdown(f"Before.\n\n{vector}\n\nAfter.").html
    assert unsafe_parts(html, "https://news.example.org/") == []
    assert unsafe_parts(relink(html, "https://news.example.org/"), "https://news.example.org/") == []


def test_no_vector_survives_in_any_built_file(site):
    for index, vector in enumerate(VECTORS):
        site.entry(f"v{index}.md", title=f"Vector {index} <script>alert({index})</script>",
                   date=f"2023-07-{1 + index % 28:02d}T10:00:00+04:00", body=f"Intro.\n\n{vector}\n\nEnd.",
                   summary=repr(f"<img src=x onerror=alert({index})>"))
    site.build()
    checked = 0
    for path in sorted(site.output.rglob("*")):
        if not path.is_file():
            continue
        for fragment in html_fragments(path):
            checked += 1
            assert unsafe_parts(fragment, "https://news.example.org/") == [], path
    assert checked >= len(VECTORS)


@pytest.mark.parametrize("source, href", [
    ("<team@x.org>", "mailto:team@x.org"),
    ("<https://x.org/a>", "https://x.org/a"),
    ("[b](other.md)", "/2017/other.md"),
    ("[b](../images/x.png)", "/images/x.png"),
    ("[b](#section)", "#section"),
])
def test_links_resolve(source, href):
    assert f'href="{href}"' in render_markdown(f"See {source}.", "/2017/").html


def test_jinja_syntax_in_an_entry_is_text(site):
    site.entry("j.md", title="{{ site.base_url }} {% raw %}", body="{{ 7 * 7 }} and {% if true %}x{% endif %}",
               summary="'{{ config }}'")
    site.build()
    page = next(site.output.glob("en/2023/07/j/index.html")).read_text()
    assert "{{ 7 * 7 }} and {% if true %}x{% endif %}" in page
    assert "{{ site.base_url }} {% raw %}" in page and "49" not in page


def test_xml_forbidden_characters_are_removed(site):
    site.write("content/x.md", entry_text(title="Bad\x01title\x7f", body="Body\x00with\x0bcontrol\x1fchars\ufffe."))
    site.build()
    for path in site.output.rglob("*.html"):
        text = path.read_text()
        assert not any(c in text for c in "\x00\x01\x0b\x1f\x7f\ufffe"), path
