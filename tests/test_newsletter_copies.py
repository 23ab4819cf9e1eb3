"""The everyday and discreet copies of each message: filled into one rendering, or each rendered in full.

With the built-in email templates, the newsletter renders an email (and its plain text)
once with markers for the sender, title and preheader and fills each copy's values in;
a site that overrides an email template gets every copy rendered in full. Both ways must
give the same bytes, whatever the values hold.
"""

from __future__ import annotations

import shutil
from email import message_from_bytes, policy

import pytest

from conftest import CONFIG, REPO
from email_site import NOW, WEEK, make_site

# Values that HTML escaping and css-inline's serializer treat differently from plain words.
AWKWARD_CONFIG = CONFIG.replace(
    'title = { en = "Test Alliance", az = "Test Alyansı", ru = "Тестовый альянс" }',
    'title = { en = "Test & <Alliance> \\"quoted\\" it\'s\\u00a0here", az = "Test Alyansı", ru = "Тестовый альянс" }',
) + ('discreet_from_name = { en = "Weekly & <digest>", az = "Həftəlik icmal", ru = "Еженедельный обзор" }\n'
     'discreet_subject = { en = "Your \\"weekly\\" digest & more\\u00a0<news>", az = "Həftəlik icmalınız",'
     ' ru = "Ваш еженедельный обзор" }\n')


def newsletter_files(site) -> dict[str, bytes]:
    return {path: data for path, data in site.tree().items() if path.startswith(("newsletter/", "alerts/"))}


def with_copied_email_templates(site):
    """Give the site its own copy of the built-in email templates: the same templates, rendered the slow way."""
    shutil.copytree(REPO / "templates" / "email", site.root / "templates" / "email")
    return site


@pytest.mark.parametrize("config", [CONFIG, AWKWARD_CONFIG], ids=["sample", "awkward values"])
def test_filled_copies_equal_copies_rendered_in_full(tmp_path, config):
    built = {}
    for way in ("filled", "rendered"):
        site = make_site(tmp_path / way)
        site.write("publisher.toml", config)
        site.entry("awkward.md", title="Raids & <arrests> in \"Baku\"\u00a0today", date="2026-11-20T10:00:00+04:00",
                   summary='"\'Twelve\' & <more> held\\u00a0now"', body="Body & <b>bold</b>.")
        if way == "rendered":
            with_copied_email_templates(site)
        site.build(NOW)
        built[way] = newsletter_files(site)
    assert len(built["filled"]) >= 28
    assert built["filled"] == built["rendered"]


def test_a_site_template_that_looks_at_discreet_is_rendered_for_each_copy(site):
    from email_site import populate

    populate(site)
    with_copied_email_templates(site)
    layout = site.root / "templates" / "email" / "layout.html"
    layout.write_text(layout.read_text(encoding="utf-8").replace(
        "<body class=\"page\">", "<body class=\"page\">{% if discreet %}<p>DISCREET COPY</p>{% endif %}"),
        encoding="utf-8")
    site.build(NOW)
    tree = site.tree()
    for name, expected in (("issue.eml", False), ("issue-discreet.eml", True)):
        message = message_from_bytes(tree[f"newsletter/en/{WEEK}/{name}"], policy=policy.default)
        assert ("DISCREET COPY" in message.get_body(("html",)).get_content()) is expected, name
