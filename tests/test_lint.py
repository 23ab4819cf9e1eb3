"""The safety lint: one test per rule, each asserting the exact path:line of the warning."""

from __future__ import annotations

import pytest

ACTION = ("\n  label: Write now\n  url: https://act.example.net/write\n  deadline: 2027-01-01T00:00:00+04:00"
          "\n  targets:\n    - name: Minister of Interior\n  asks:\n    - Free them")


def warnings(site) -> list[str]:
    problems = site.check()
    assert not [p for p in problems if not p.warning], problems
    return [str(p) for p in problems]


def write(site, body: str, **fields) -> str:
    fields.setdefault("summary", "'Police raided a party.'")
    site.entry("2023/raid.md", body=body, **fields)
    return "content/2023/raid.md"


def body_line(site, path: str, needle: str) -> int:
    """Return the file line holding `needle`, so tests state lines without counting by hand."""
    lines = (site.root / path).read_text(encoding="utf-8").split("\n")
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_clean_entry_has_no_warnings(site):
    write(site, "Read [the overview](/en/2023/07/raid/) and ![a crowd](/images/crowd.png).")
    site.write("content/images/crowd.png", _png())
    assert warnings(site) == []


def test_remote_image_is_a_warning_at_its_line(site):
    path = write(site, "First paragraph.\n\n![the crowd](https://cdn.example.com/crowd.jpg)\n")
    line = body_line(site, path, "cdn.example.com")
    assert any(w.startswith(f"{path}:{line}: warning: media from another host (cdn.example.com)") for w in warnings(site))


def test_remote_media_in_raw_html_is_a_warning(site):
    path = write(site, 'Watch:\n\n<video src="https://video.example.com/a.mp4" poster="/x.png"></video>\n')
    line = body_line(site, path, "<video")
    found = warnings(site)
    assert any(w.startswith(f"{path}:{line}: warning: media from another host (video.example.com)") for w in found)


def test_image_on_base_url_is_not_remote(site):
    site.write("content/images/crowd.png", _png())
    write(site, "![a crowd](https://news.example.org/images/crowd.png)\n")
    assert warnings(site) == []


@pytest.mark.parametrize("query", ["utm_source=newsletter", "fbclid=IwAR0", "gclid=abc", "mc_eid=123", "UTM_Medium=x"])
def test_tracking_parameters_are_a_warning(site, query):
    path = write(site, f"Intro.\n\nSee [the report](https://hrw.example.net/report?id=4&{query}).\n")
    line = body_line(site, path, "the report")
    assert [w for w in warnings(site) if "tracking parameter" in w and w.startswith(f"{path}:{line}:")]


def test_tracking_parameter_in_reference_definition(site):
    path = write(site, "See [the report][r].\n\n[r]: https://hrw.example.net/r?utm_campaign=x\n")
    line = body_line(site, path, "[r]:")
    assert f"{path}:{line}: warning: tracking parameter utm_campaign in a link: remove them" in warnings(site)


def test_tracking_parameter_in_action_url(site):
    path = write(site, "Act now.", type="campaign",
                 action="\n  label: Sign\n  url: https://act.example.net/p?utm_source=mail")
    line = body_line(site, path, "action:")
    assert f"{path}:{line}: warning: tracking parameter utm_source in a link: remove them" in warnings(site)


def test_http_link_is_a_warning(site):
    path = write(site, "Intro.\n\nRead <http://insecure.example.net/page>.\n")
    line = body_line(site, path, "insecure")
    assert (f"{path}:{line}: warning: 'http://' link to insecure.example.net: use https:// so readers are not "
            f"exposed on the network") in warnings(site)


def test_image_without_alt_text(site):
    site.write("content/images/crowd.png", _png())
    path = write(site, "Intro.\n\n![](/images/crowd.png)\n\n<img src=\"/images/crowd.png\">\n")
    found = warnings(site)
    assert f"{path}:{body_line(site, path, '![]')}: warning: an image without alt text: describe it for readers " \
           f"who cannot see it" in found
    assert f"{path}:{body_line(site, path, '<img')}: warning: an image without an alt attribute: describe it for " \
           f"readers who cannot see it" in found


def test_long_title(site):
    path = write(site, "Body.", title="A" * 81)
    line = body_line(site, path, "title:")
    assert [w for w in warnings(site) if w.startswith(f"{path}:{line}: warning: the title is 81 characters, over 80")]


def test_title_limit_comes_from_config(site):
    site.write("publisher.toml", (site.root / "publisher.toml").read_text() + "\n[lint]\nmax_title = 10\n")
    path = write(site, "Body.", title="Eleven char")
    assert [w for w in warnings(site) if w.startswith(f"{path}:2: warning: the title is 11 characters, over 10")]


def test_missing_summary(site):
    site.entry("2023/raid.md", body="Body.")
    assert warnings(site) == ["content/2023/raid.md:1: warning: no 'summary': add one or two sentences for the "
                              "email preheader, feeds and listings"]


def test_long_summary(site):
    path = write(site, "Body.", summary="'" + "word " * 40 + "words'")
    line = body_line(site, path, "summary:")
    assert [w for w in warnings(site) if w.startswith(f"{path}:{line}: warning: the summary is 205 characters, over 200")]


@pytest.mark.parametrize("missing, action", [
    ("deadline", "\n  label: Write\n  url: https://act.example.net/write\n  targets: [{name: Minister}]\n  asks: [Free them]"),
    ("targets", "\n  label: Write\n  url: https://act.example.net/write\n  deadline: 2027-01-01\n  asks: [Free them]"),
    ("asks", "\n  label: Write\n  url: https://act.example.net/write\n  deadline: 2027-01-01\n  targets: [{name: Minister}]"),
])
def test_alert_without_deadline_targets_or_asks(site, missing, action):
    path = write(site, "Act.", type="alert", action=action)
    line = body_line(site, path, "action:")
    assert [w for w in warnings(site) if w.startswith(f"{path}:{line}: warning: this alert's action has no {missing}:")]


def test_complete_alert_has_no_warning(site):
    write(site, "Act.", type="alert", action=ACTION)
    assert warnings(site) == []


def test_expired_action_still_promoted(site):
    path = write(site, "Act.", type="campaign",
                 action="\n  label: Write\n  url: https://act.example.net/write\n  deadline: 2024-01-01T00:00:00+04:00")
    line = body_line(site, path, "action:")
    assert [w for w in warnings(site) if w.startswith(f"{path}:{line}: warning: the deadline 2024-01-01T00:00:00+04:00 "
                                                      f"has passed but the action is still promoted")]


def test_expired_action_closed_by_expires_is_fine(site):
    write(site, "Act.", type="campaign", expires="2024-01-02T00:00:00+04:00",
          action="\n  label: Write\n  url: https://act.example.net/write\n  deadline: 2024-01-01T00:00:00+04:00")
    assert warnings(site) == []


def test_link_to_a_missing_page(site):
    site.entry("2023/other.md", title="Other", summary="Other.", date="2023-08-01T10:00:00+04:00")
    path = write(site, "See [other](/en/2023/08/other/), [gone](/en/2023/08/gone/) and "
                       "[relative](other.md) and [file](../files/missing.pdf).\n")
    line = body_line(site, path, "[gone]")
    found = warnings(site)
    assert f"{path}:{line}: warning: a link to /en/2023/08/gone/, which is not a page or file of the site" in found
    assert f"{path}:{line}: warning: a link to /files/missing.pdf, which is not a page or file of the site" in found
    assert f"{path}:{line}: warning: a link to /2023/other.md, which is not a page or file of the site" in found
    assert not [w for w in found if "/en/2023/08/other/" in w]


def test_link_on_base_url_to_a_missing_page(site):
    path = write(site, "See [it](https://news.example.org/en/nothing-here/).\n")
    line = body_line(site, path, "[it]")
    assert f"{path}:{line}: warning: a link to /en/nothing-here/, which is not a page or file of the site" in warnings(site)


def test_links_in_code_are_ignored(site):
    write(site, "Example:\n\n```\n![x](http://cdn.example.com/a.png?utm_source=x)\n```\n\n`<img src=http://a.example>`\n")
    assert warnings(site) == []


def test_drafts_are_linted_too(site):
    path = write(site, "![x](https://cdn.example.com/a.png)", draft="true")
    assert [w for w in warnings(site) if w.startswith(f"{path}:") and "media from another host" in w]


def test_strict_check_turns_warnings_into_errors(site):
    write(site, "Read <http://insecure.example.net/>.")
    relaxed, strict = site.cli("check", "--now", "2026-11-22T12:00:00Z"), site.cli("check", "--strict", "--now",
                                                                                   "2026-11-22T12:00:00Z")
    assert relaxed.returncode == 0 and "warning: 'http://' link" in relaxed.stderr
    assert strict.returncode == 1 and "warning: 'http://' link" in strict.stderr


def test_lint_config_is_validated(site):
    site.write("publisher.toml", (site.root / "publisher.toml").read_text() +
               "\n[lint]\nmax_summary = 0\nredaction_list = \"content/redactions.txt\"\n")
    problems = [str(p) for p in site.check()]
    summary, redaction = body_line(site, "publisher.toml", "max_summary"), body_line(site, "publisher.toml", "redaction")
    assert f"publisher.toml:{summary}: 'lint.max_summary' must be a positive whole number" in problems
    assert any(p.startswith(f"publisher.toml:{redaction}: 'lint.redaction_list' must be outside content/") for p in problems)


def _png() -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, "PNG")
    return buffer.getvalue()



def test_footnotes_are_not_links(site):
    write(site, "A claim.[^1]\n\n[^1]: Administrative detention is short.\n")
    assert warnings(site) == []


def test_alert_subject_over_the_limit_with_its_prefix(site):
    title = "Detained activists must be released today " + "x" * 33  # 75 characters: the title alone is fine
    path = write(site, "Act.", type="alert", title=title, action=ACTION)
    line = body_line(site, path, "title:")
    found = warnings(site)
    assert [w for w in found if w.startswith(f"{path}:{line}: warning: the subject of the email alerts/en/raid is ")
            and "over 80" in w]
    assert not [w for w in found if "the title is" in w]


def test_drafts_may_link_to_each_other_but_published_entries_may_not(site):
    site.entry("2023/next.md", title="Next", summary="Next.", date="2023-08-01T10:00:00+04:00", draft="true")
    site.entry("2023/plan.md", title="Plan", summary="Plan.", date="2023-08-01T10:00:00+04:00", draft="true",
               body="See [next](/en/2023/08/next/).")
    path = write(site, "See [next](/en/2023/08/next/).")
    found = warnings(site)
    assert found == [f"{path}:{body_line(site, path, '[next]')}: warning: a link to /en/2023/08/next/, which is not "
                     f"a page or file of the site"]


def test_indented_code_blocks_are_ignored(site):
    write(site, "Example:\n\n    ![x](https://cdn.example.com/a.png)\n\n    <http://a.example/>\n\nEnd.")
    assert warnings(site) == []


def test_data_images_are_a_warning(site):
    path = write(site, "Intro.\n\n![dot](data:image/png;base64,iVBORw0KGgo=)\n")
    assert f"{path}:{body_line(site, path, 'data:')}: warning: media from a 'data:' address, which is never published: " \
           f"save the file under content/ instead" in warnings(site)
