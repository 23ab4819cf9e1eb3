"""Fitting an issue under its size budget: the steps predicted from one rendering per mode are the steps rendered.

budget.fit renders an issue once with every entry in full, once with every entry as a
summary, once as a title, and puts the HTML of each step in between together from those
blocks. These tests render every step for real and compare, on an issue of many long
entries with awkward values, and check that fit chooses what rendering every step chooses
at each budget where the choice changes.
"""

from __future__ import annotations

import pytest

from conftest import CONFIG, ScratchSite
from email_site import ALERT_ACTION, BODY, CAMPAIGN_ACTION, NOW, WEEK, png
from publisher import budget, newsletter
from publisher.budget import fit  # the real one: the fixture below records calls of budget.fit
from test_newsletter_copies import newsletter_files, with_copied_email_templates

HOSTILE = """\
A body that quotes the email's own markup as text: `<tr>\n<td class="entry" id="x">` and
<td class="entry" id="long-1"> in a tag of its own, & a stray </td></tr> too.

<table><tr><td class="entry" id="long-2">a cell</td></tr></table>

<b>unclosed bold, <i>italic

## A heading {#long}

Text\u00a0with no-break spaces and “quotes” and ə ğ ı İ ş.[^n]

[^n]: A footnote.
"""


def populate(site: ScratchSite, count: int = 12) -> None:
    """Write one week (2026-W47) of many long entries in English: updates, alerts, campaigns, awkward values."""
    site.write("content/images/street.png", png())
    for index in range(count):
        kind = ("update", "alert", "campaign")[index % 3]
        fields = dict(type=kind, date=f"2026-11-{16 + index % 6:02d}T{8 + index:02d}:00:00+04:00",
                      summary=f'"\\"Held\\u00a0& <charged>\\" no. {index}"' if index % 2 else f"Summary {index}.")
        if kind == "alert":
            fields.update(action=ALERT_ACTION, expires="2026-12-01T00:00:00+04:00")
        elif kind == "campaign":
            fields.update(action=CAMPAIGN_ACTION)
        if index == 4:
            fields.update(correction='"\\"Names & <dates>\\" fixed"', updated="2026-11-21T10:00:00+04:00")
        body = (BODY * (1 + index % 4)) + (HOSTILE if index % 5 == 0 else "")
        # Anchors that a body's own ids, prefixed with its entry's anchor, could be mistaken for.
        name = {0: "long.md", 7: "long-1.md", 5: "long-2.md"}.get(index, f"entry-{index}.md")
        site.entry(f"{index % 2}/{name}", title=f'Raids & <arrests> "{index}"\u00a0today #{index}', body=body, **fields)


@pytest.fixture
def fits(monkeypatch):
    """Record every call of budget.fit with its arguments, and return the list."""
    calls = []
    def recording(*args):
        calls.append(args)
        return fit(*args)

    monkeypatch.setattr(budget, "fit", recording)
    return calls


def test_every_predicted_step_is_the_step_rendered(tmp_path, fits):
    site = ScratchSite(tmp_path / "site")
    site.write("publisher.toml", CONFIG + "max_html_kb = 30\n")
    populate(site)
    newsletter.preview_issue(site.root, WEEK, "en", NOW)
    (page, order, modes, render, limit, _), = fits
    assert len(order) == 12
    tried = budget.mixes(order, modes)
    htmls = [render(mix).html() for mix in tried]
    count = len(order)
    for stage in range(1, len(modes)):
        before = budget.cut(htmls[(stage - 1) * count], count)
        after = budget.cut(htmls[stage * count], count)
        for i in range(count):
            step = (stage - 1) * count + 1 + i
            assert budget.predicted(before, after, page, set(order[:i + 1])) == htmls[step], step


def test_fit_chooses_what_rendering_every_step_chooses(tmp_path, fits):
    site = ScratchSite(tmp_path / "site")
    site.write("publisher.toml", CONFIG)
    populate(site)
    newsletter.preview_issue(site.root, WEEK, "en", NOW)
    (page, order, modes, render, _, assemble), = fits
    tried = budget.mixes(order, modes)
    sizes = [len(render(mix).html().encode()) for mix in tried]
    # At each step's own size and a byte under it the choice changes; and at budgets nothing or everything fits.
    for limit in sorted({size + delta for size in sizes for delta in (0, -1)} | {1, 10 ** 7}):
        slow = budget.fit_slowly(tried, render, limit)
        renders = []
        fast = fit(page, order, modes, lambda mix: renders.append(mix) or render(mix), limit, assemble)
        # One rendering per mode reached, none for the step chosen between them: its email is put together.
        assert len(renders) == 1 + max(map(modes.index, fast[0].values()), default=0), limit
        assert (fast[0], fast[2]) == (slow[0], slow[2]), limit
        assert fast[1].html({"discreet": True, "sender": "S", "title": "T", "preheader": "P"}) == \
            slow[1].html({"discreet": True, "sender": "S", "title": "T", "preheader": "P"}), limit


@pytest.mark.parametrize("kb", [16, 25, 60])
def test_issues_over_the_budget_equal_those_rendered_step_by_step(tmp_path, kb):
    """A site with its own copy of the email templates has every step rendered: the same bytes come out."""
    built = {}
    for way in ("predicted", "rendered"):
        site = ScratchSite(tmp_path / way)
        site.write("publisher.toml", CONFIG + f"max_html_kb = {kb}\n")
        populate(site)
        if way == "rendered":
            with_copied_email_templates(site)
        site.build(NOW)
        built[way] = newsletter_files(site)
    text = built["predicted"][f"newsletter/en/{WEEK}/issue.txt"].decode()
    # 60 KB stops among the summaries, 25 KB among the titles, 16 KB shows every entry as a title.
    assert (0 < text.count("Read the full story") < 12) is (kb != 16)
    assert built["predicted"] == built["rendered"]


def test_html_with_a_look_alike_of_a_block_is_not_cut():
    block = budget.BLOCK_START + 'a">x</td>\n</tr>\n'
    page = "<head></head>" + block + block + '<tr>\n<td class="footer">f</td></tr>'
    assert budget.cut(page, 2).blocks == (block, block + "<tr>\n")  # what comes before the footer goes with the last
    assert budget.cut(page, 1) is None  # as when a body holds a look-alike: every step is rendered
    assert budget.cut(page.replace(budget.FOOTER, "<td"), 2) is None
