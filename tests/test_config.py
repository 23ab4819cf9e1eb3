"""publisher.toml: every bad or unknown key reported at once, with its line."""

from __future__ import annotations

from publisher.config import load_config
from publisher.problems import EditorError

BAD = """\
title = 3
base_url = "news.example.org"
tag_authority = "news.example.org"
timezone = "Asia/Bakuu"
languages = ["en", "xx", "en"]
default_language = "fr"
colour = "red"

[newsletter]
weekday = "mondai"
time = "9am"
max_html_kb = -1
unsubscribe_url = "http://x.org/u"
from_address = "not an address"
alert_word = { en = "URGENT", de = "DRINGEND" }
sendr = "x"

[feeds]
limit = "50"
"""

EXPECTED = [
    "publisher.toml:1: 'title' must be a string or a table of language = \"text\"",
    "publisher.toml:2: 'base_url' must be an absolute http(s) URL such as https://example.org/",
    "publisher.toml:3: 'tag_authority' must be 'domain,YYYY' (RFC 4151), e.g. 'example.org,2024'",
    "publisher.toml:4: unknown time zone 'Asia/Bakuu' (use an IANA name such as Asia/Baku)",
    "publisher.toml:5: 'languages' lists a language twice",
    "publisher.toml:5: unknown language 'xx' (use a code such as en, az, ru)",
    "publisher.toml:6: default_language 'fr' is not in 'languages'",
    "publisher.toml:7: unknown key 'colour'",
    "publisher.toml:10: 'newsletter.weekday' must be a day name such as monday",
    "publisher.toml:11: 'newsletter.time' must be HH:MM, e.g. 09:00",
    "publisher.toml:12: 'newsletter.max_html_kb' must be a positive whole number",
    "publisher.toml:13: 'newsletter.unsubscribe_url' must be an https URL",
    "publisher.toml:14: 'newsletter.from_address' must be a plain address such as news@example.org",
    "publisher.toml:15: 'newsletter.alert_word' names 'de', which is not in 'languages'",
    "publisher.toml:16: unknown key 'newsletter.sendr' (did you mean 'sender'?)",
    "publisher.toml:19: 'feeds.limit' must be a positive whole number",
]


def problems_of(site, text: str) -> list[str]:
    site.write("publisher.toml", text)
    try:
        load_config(site.root)
    except EditorError as error:
        return [str(p) for p in error.problems]
    return []


def test_every_bad_key_is_reported_with_its_line(site):
    found = problems_of(site, BAD)
    expected = [e.replace(" (did you mean 'sender'?)", "") for e in EXPECTED]
    assert [f for f in found if "sendr" not in f] == [e for e in expected if "sendr" not in e]
    assert any(f.startswith("publisher.toml:16: unknown key 'newsletter.sendr'") for f in found)


def test_toml_syntax_error_has_its_line(site):
    assert problems_of(site, 'title = "T"\nbase_url = \n') == [
        "publisher.toml:2: TOML syntax error: Invalid value"]


def test_missing_required_keys(site):
    assert problems_of(site, 'timezone = "Asia/Baku"\n') == [
        "publisher.toml:1: missing required key 'base_url'",
        "publisher.toml:1: missing required key 'tag_authority'",
        "publisher.toml:1: missing required key 'title'",
    ]


def test_missing_config_file(tmp_path):
    try:
        load_config(tmp_path)
    except EditorError as error:
        assert str(error.problems[0]).startswith("publisher.toml:1: no publisher.toml here")
    else:
        raise AssertionError("expected an EditorError")


def test_defaults_and_localized_values(site):
    config = site.config
    assert config.timezone == "Asia/Baku" and config.languages == ("en", "az", "ru")
    assert config.text(config.title, "az") == "Test Alyansı"
    assert config.text(config.newsletter.alert_word, "ru") == "СРОЧНО"
    assert config.newsletter.weekday == "monday" and config.feeds.limit == 50
    assert config.host == "news.example.org"
