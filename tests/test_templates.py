"""Template environments: constant strings translated at compile time, remembered date formats."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from jinja2 import Environment

from publisher.templates import Templates, translations


def render(site, source: str, lang: str = "az", **context) -> str:
    return Templates(site.config).env(lang).from_string(source).render(**context)


def test_a_constant_string_is_translated_when_compiled_exactly_as_at_render_time(site):
    templates = Templates(site.config)
    env = templates.env("az")
    code = env.compile('<a>{{ _("Home") }}</a>{{ gettext("Tags") }}', raw=True)
    assert "'Home'" not in code and "'Tags'" not in code  # no call left to run per page
    expected = translations("az").gettext("Home") + translations("az").gettext("Tags")
    assert expected != "HomeTags"  # the catalog really translates them
    assert env.from_string('{{ _("Home") }}{{ gettext("Tags") }}').render() == expected


def test_translations_are_trusted_markup_in_html_and_plain_in_text(site):
    templates = Templates(site.config)
    env = templates.env("en")
    source = '{% autoescape true %}{{ _("a <b> & c") }}{% endautoescape %}|{{ _("a <b> & c") | e }}'
    assert env.from_string(source).render() == "a <b> & c|a &lt;b&gt; &amp; c"


def test_strings_with_variables_are_translated_when_compiled_and_formatted_at_render_time(site):
    env = Templates(site.config).env("az")
    source = '{{ _("Newsletter no. %(number)s, week of %(date)s", number=n, date=d) }}'
    assert "Newsletter no." not in env.compile(source, raw=True)
    translation = translations("az").gettext("Newsletter no. %(number)s, week of %(date)s")
    expected = translation % {"number": 3, "date": "&lt;x&gt;"}
    assert env.from_string("{% autoescape true %}" + source + "{% endautoescape %}").render(n=3, d="<x>") == expected
    assert render(site, '{{ _("100%% sure") }}', "en") == "100% sure"
    assert render(site, '{{ _("%(n)s of %(m)s", n=1, m=2) }}', "en") == "1 of 2"
    with pytest.raises(KeyError):  # a variable the string needs and the template forgot, as before
        render(site, '{{ _("%(n)s of %(m)s", n=1) }}', "en")


def test_a_template_that_binds_the_name_itself_is_left_alone(site):
    assert render(site, '{% set _ = "[{}]".format %}{{ _("Home") }}', "az") == "[Home]"
    source = '{% macro m(gettext) %}{{ gettext("Home") }}{% endmacro %}{{ m("({})".format) }}'
    assert render(site, source, "az") == "(Home)"


def test_remembered_dates_keep_zones_and_folds_apart(site):
    env = Templates(site.config).env("en")
    baku = datetime(2024, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Baku"))
    utc = baku.astimezone(timezone.utc)  # the same instant: equal, and formats alike through the site zone
    assert env.filters["isodate"](baku) == env.filters["isodate"](utc) == "2024-03-05T10:00:00+04:00"
    london = ZoneInfo("Europe/London")
    first = datetime(2024, 10, 27, 1, 30, tzinfo=london)  # 01:30 happens twice that night
    second = first.replace(fold=1)
    assert env.filters["isodate"](first) != env.filters["isodate"](second)
    assert env.filters["isodate"](first + timedelta(hours=1)) == "2024-10-27T06:30:00+04:00"
    assert env.filters["date"](baku) == env.filters["date"](baku, "long") == "March 5, 2024"
    assert env.filters["date"](baku, "short") == env.filters["date"](baku, fmt="short") == "3/5/24"


def test_a_shared_fragment_renders_once_per_key_and_every_time_without_one(site):
    env = Templates(site.config).env("en")
    template = env.from_string("{% shared key %}<p>{{ count() }} {{ _('Home') }}</p>{% endshared %}")
    calls = []

    def count():
        calls.append(1)
        return len(calls)

    assert [template.render(key=k, count=count) for k in ("a", "b", "a", ("x", 1), ("x", 1))] == [
        "<p>1 Home</p>", "<p>2 Home</p>", "<p>1 Home</p>", "<p>3 Home</p>", "<p>3 Home</p>"]
    assert template.render(key=None, count=count) == "<p>4 Home</p>"
    assert template.render(count=count) == "<p>5 Home</p>"  # no key given: nothing is shared
    again = env.from_string("{% shared key %}<p>{{ count() }}</p>{% endshared %}")  # a template compiled anew
    assert again.render(key="a", count=count) == "<p>6</p>"



def test_compiled_templates_are_kept_for_the_next_build_and_render_the_same(site, monkeypatch):
    site.write("templates/page.html", '{{ _("Home") }} {{ lang }}\n')
    first = Templates(site.config, keep_compiled=True).render("page.html", "az")
    compiled = []
    real = Environment.compile
    monkeypatch.setattr(Environment, "compile", lambda self, *a, **k: compiled.append(a) or real(self, *a, **k))
    again = Templates(site.config, keep_compiled=True).render("page.html", "az")
    assert again == first and compiled == []
    site.write("templates/page.html", '{{ _("Home") }}!\n')  # a changed source is compiled again
    assert Templates(site.config, keep_compiled=True).render("page.html", "az") == translations("az").gettext("Home") + "!\n"
    assert len(compiled) == 1


def test_compiled_templates_are_kept_per_language_and_catalog_and_stale_ones_removed(site, tmp_path, monkeypatch):
    from publisher import templates

    site.write("templates/page.html", '{{ _("Home") }}\n')
    for lang in ("en", "az"):
        Templates(site.config, keep_compiled=True).render("page.html", lang)
    folders = site.root / "state/cache/templates"
    before = sorted(p.name for p in folders.iterdir())
    assert [name.split("-")[0] for name in before] == ["az", "en"]
    catalogs = tmp_path / "locale"
    shutil.copytree(templates.LOCALE_DIR, catalogs)
    po = catalogs / "az/LC_MESSAGES/messages.po"
    po.write_text(po.read_text(encoding="utf-8").replace('msgid "Home"\nmsgstr "', 'msgid "Home"\nmsgstr "X'),
                  encoding="utf-8")
    home = translations("az").gettext("Home")
    monkeypatch.setattr(templates, "LOCALE_DIR", catalogs)
    assert Templates(site.config, keep_compiled=True).render("page.html", "az") == f"X{home}\n"
    after = sorted(p.name for p in folders.iterdir())
    assert len(after) == 2 and after[1] == before[1] and after[0] != before[0]  # az's old folder is gone


def test_a_cache_that_cannot_be_made_or_read_still_renders(site):
    site.write("templates/page.html", "{{ lang }}\n")
    site.write("state/cache/templates", "a file where the folder should be")
    assert Templates(site.config, keep_compiled=True).render("page.html", "en") == "en\n"
    (site.root / "state/cache/templates").unlink()
    Templates(site.config, keep_compiled=True).render("page.html", "en")
    for compiled in (site.root / "state/cache/templates").glob("*/*"):
        compiled.write_bytes(b"garbage")
    assert Templates(site.config, keep_compiled=True).render("page.html", "en") == "en\n"


def test_shared_fragments_of_templates_compiled_in_other_processes_never_mix(site):
    """Fragment ids are compiled in; a template loaded from the cache meets ones compiled here."""
    site.write("templates/a.html", '{% shared "k" %}from a{% endshared %}\n')
    site.write("templates/b.html", '{% shared "k" %}from b{% endshared %}\n')
    script = ("import sys, pathlib; from publisher.config import load_config; from publisher.templates import Templates; "
              "Templates(load_config(pathlib.Path(sys.argv[1])), keep_compiled=True).render('a.html', 'en')")
    subprocess.run([sys.executable, "-c", script, str(site.root)], check=True)
    templates = Templates(site.config, keep_compiled=True)
    assert templates.render("b.html", "en") == "from b"  # compiled here
    assert templates.render("a.html", "en") == "from a"  # loaded from the cache
