"""The subscriber list: normalised addresses, CSV import reported as path:line, masking, the CLI."""

from __future__ import annotations

import csv
import io
import stat

import pytest

from conftest import NOW
from publisher.problems import EditorError
from publisher.subscribers import BadAddress, SubscriberList, mask, mask_addresses, normalise_address


@pytest.mark.parametrize("given, stored", [
    ("Reader@Example.ORG", "reader@example.org"),
    ("  <reader@example.org>  ", "reader@example.org"),
    ("first.last+news@mail.example.org", "first.last+news@mail.example.org"),
    ("ad@Bakı.az", "ad@" + "bakı.az".encode("idna").decode()),
    ("o'brien@example.ie", "o'brien@example.ie"),
])
def test_addresses_are_normalised(given, stored):
    assert normalise_address(given) == stored


@pytest.mark.parametrize("bad", [
    "", "reader", "@example.org", "reader@", "reader@localhost", "two@@example.org", "a b@example.org",
    "reader@example.org\r\nBcc: x@evil.org", "reader@exa_mple.org", ".dot@example.org", "dot.@example.org",
    "ünicode@example.org", "reader@-example.org", "reader@example.123", "x" * 65 + "@example.org",
    "a@b.org, c@d.org",
])
def test_bad_addresses_are_refused(bad):
    with pytest.raises(BadAddress):
        normalise_address(bad)


def test_masking():
    assert mask("alice@example.org") == "a***@e***.org"
    assert mask_addresses("550 5.1.1 <bob@mail.example.org>: unknown") == "550 5.1.1 <b***@m***.org>: unknown"


def test_add_updates_settings_and_never_reactivates(site):
    with SubscriberList(site.config) as subscribers:
        first = subscribers.add("reader@example.org", NOW, "az", ["weekly"])
        assert (first.status, first.language, first.lists) == ("active", "az", ("weekly",))
        again = subscribers.add("READER@example.org", NOW, "ru", ["weekly", "alerts"], discreet=True)
        assert again.id == first.id and (again.language, again.lists, again.discreet) == ("ru", ("weekly", "alerts"), True)
        subscribers.set_status(first.id, "unsubscribed", NOW)
        assert subscribers.add("reader@example.org", NOW).status == "unsubscribed"
        with pytest.raises(BadAddress, match="language"):
            subscribers.add("x@example.org", NOW, "fr")
        with pytest.raises(BadAddress, match="lists"):
            subscribers.add("x@example.org", NOW, "en", ["daily"])


def test_the_database_is_private_to_its_owner(site):
    with SubscriberList(site.config) as subscribers:
        subscribers.add("reader@example.org", NOW)
    database = site.root / "state" / "subscribers.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) & 0o077 == 0


def test_import_reports_every_bad_row_with_its_line_and_imports_nothing(site):
    path = site.write("list.csv", "address,language,lists\nok@example.org,en,weekly\nnot-an-address,en,weekly\n"
                                  "ok2@example.org,fr,weekly\nOK@example.org,ru,alerts\n")
    with SubscriberList(site.config) as subscribers:
        with pytest.raises(EditorError) as error:
            subscribers.import_csv(path, NOW)
        assert [(p.line, p.message.split(" (")[0]) for p in error.value.problems] == [
            (3, "not an email address"), (4, "language 'fr' is not one of the site's languages"),
            (5, "this address is already on line 2")]
        assert list(subscribers.all()) == []


def test_import_without_a_header_and_export_round_trip(site):
    path = site.write("list.csv", "a@example.org\nb@example.org,ru,alerts,yes\n")
    with SubscriberList(site.config) as subscribers:
        assert subscribers.import_csv(path, NOW) == (2, 0)
        assert subscribers.import_csv(path, NOW) == (0, 2)
        out = io.StringIO()
        assert subscribers.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["address"], r["language"], r["lists"], r["discreet"]) for r in rows] == [
        ("a@example.org", "en", "weekly alerts", "no"), ("b@example.org", "ru", "alerts", "yes")]
    other = site.write("again.csv", out.getvalue())
    with SubscriberList(site.config) as subscribers:
        assert subscribers.import_csv(other, NOW) == (0, 2)


def test_cli_add_list_remove_export_mask_addresses(site, tmp_path):
    added = site.cli("subscribers", "add", "Reader@Example.org", "--lang", "ru", "--discreet")
    assert added.returncode == 0 and "r***@e***.org" in added.stderr and "reader@" not in added.stderr.lower()
    listed = site.cli("subscribers", "list")
    assert "r***@e***.org\tactive\tru\tweekly,alerts discreet" in listed.stdout and "reader@" not in listed.stdout
    assert "reader@example.org" in site.cli("subscribers", "list", "--unmasked").stdout
    target = tmp_path / "private" / "list.csv"
    target.parent.mkdir()
    exported = site.cli("subscribers", "export", "--output", str(target))
    assert exported.returncode == 0 and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "reader@example.org" in target.read_text()
    refused = site.cli("subscribers", "export", "--output", "content/list.csv")
    assert refused.returncode == 1 and "published" in refused.stderr and not (site.root / "content/list.csv").exists()
    removed = site.cli("subscribers", "remove", "reader@example.org")
    assert removed.returncode == 0 and "removed" in removed.stderr
    assert site.cli("subscribers", "list").stdout.strip() == "# pending 0, active 0, unsubscribed 0, bounced 0"


def test_cli_reports_a_bad_address_and_a_bad_csv_cleanly(site):
    bad = site.cli("subscribers", "add", "nobody")
    assert bad.returncode == 1 and "not an email address" in bad.stderr and "Traceback" not in bad.stderr
    site.write("bad.csv", "address\nfine@example.org\nbroken\n")
    result = site.cli("subscribers", "import", "bad.csv")
    assert result.returncode == 1 and "bad.csv:3: not an email address" in result.stderr


def test_export_quotes_addresses_a_spreadsheet_would_run_as_formulas(site):
    with SubscriberList(site.config) as subscribers:
        subscribers.add("=1+2@example.org", NOW)
        out = io.StringIO()
        subscribers.export_csv(out)
        assert "'=1+2@example.org" in out.getvalue()
        again = site.write("again.csv", out.getvalue())
        assert subscribers.import_csv(again, NOW) == (0, 1)
