"""Google Contacts CSV fidelity per field class, labels both ways (issue 12: "a Google Contacts CSV drops its
email/phone labels"), and the contact field model's migration: old bare lists read, upgraded by events."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import PASSPHRASE

from ingest.google_csv import GoogleCsvImporter
from vault import Kind, Source, Vault
from vault.domain.contacts import address, texts, typed, upgraded
from vault.formats.exporting import export_file
from vault.formats import SourceRecord
from vault.formats.importing import import_file
from vault.upgrade import upgrade_records
from vault.web.browse.rendering import render_typed_values

FIXTURES = Path(__file__).parent.parent / "fixtures" / "google_csv"


def read(path: Path) -> dict[str, dict]:
    return {r.fields["name"]: r.fields for r in GoogleCsvImporter().read(path) if isinstance(r, SourceRecord)}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def exported(vault: Vault, tmp_path: Path) -> tuple[dict[str, dict], Path]:
    import_file(vault, FIXTURES / "labels.csv")
    out = tmp_path / "out.csv"
    export_file(vault, "google-csv", out)
    return {f["name"]: f for _, f in vault.projection.state(Kind.CONTACT)}, out


def test_email_and_phone_labels_are_read(exported) -> None:
    held, _ = exported
    chidi = held["Chidi Okafor"]
    assert chidi["emails"] == [typed("chidi@example.edu", ["work"], pref=1),  # "* Work": primary, Google's own label
                               typed("chidi.o@example.org", [], "Thesis"), typed("c.okafor@example.org", [], "Thesis")]
    assert chidi["phones"] == [typed("+1 555 010 7788", ["cell"]), typed("+1 555 010 7790", ["work", "fax"]),
                               typed("+1 555 010 7791", [], "Boat")]
    eleanor = held["Eleanor Shellstrop"]
    assert eleanor["phones"] == [typed("+1 555 013 0000", [], "Main"), typed("+1 555 013 0001", ["home", "fax"]),
                                 typed("+1 555 013 0002", [], "Google Voice", pref=1)]
    assert eleanor["emails"] == [typed("eleanor@example.com", ["other"])]


def test_email_and_phone_labels_are_written_back(exported) -> None:
    _, out = exported
    chidi = next(r for r in rows(out) if r["First Name"] == "Chidi")
    assert (chidi["E-mail 1 - Label"], chidi["E-mail 1 - Value"]) == ("* Work", "chidi@example.edu")
    assert (chidi["E-mail 2 - Label"], chidi["E-mail 2 - Value"]) == ("Thesis", "chidi.o@example.org ::: c.okafor@example.org")
    assert [chidi[f"Phone {n} - Label"] for n in (1, 2, 3)] == ["Mobile", "Work Fax", "Boat"]
    eleanor = next(r for r in rows(out) if r["First Name"] == "Eleanor")
    assert [eleanor[f"Phone {n} - Label"] for n in (1, 2, 3)] == ["Main", "Home Fax", "* Google Voice"]


def test_addresses_ims_relations_events_custom_fields_and_other_columns(exported) -> None:
    held, out = exported
    chidi = held["Chidi Okafor"]
    assert chidi["addresses"] == [address({"street": "42 Fork Street", "city": "St. John", "region": "AZ", "code": "85001",
                                           "country": "USA", "formatted": "42 Fork Street\nSt. John, AZ 85001\nUSA"},
                                          ["home"], pref=1)]
    assert chidi["impps"] == [typed("chidi.okafor", ["home"], params={"X-SERVICE-TYPE": ["Skype"]})]
    assert chidi["relations"] == [typed("Eleanor Shellstrop", [], "Friend")]
    assert chidi["dates"] == [typed("2016-09-19", [], "Anniversary")]
    assert chidi["custom_fields"] == [typed("Kant", [], "Favourite philosopher")]
    assert chidi["urls"] == [typed("https://example.org/chidi", [], "Blog")]
    assert chidi["google_columns"] == {"Phonetic First Name": "CHEE-dee", "File As": "Okafor, Chidi"}
    row = next(r for r in rows(out) if r["First Name"] == "Chidi")
    assert (row["IM 1 - Service"], row["IM 1 - Value"], row["Address 1 - Label"]) == ("Skype", "chidi.okafor", "* Home")
    assert row["Phonetic First Name"] == "CHEE-dee" and row["Custom Field 1 - Value"] == "Kant"
    assert read(out) == held  # every field class comes back as the vault holds it


@pytest.mark.parametrize("fixture", ["labels.csv", "contacts.csv", "legacy.csv"])
def test_import_export_import_appends_nothing(vault: Vault, tmp_path: Path, fixture: str) -> None:
    import_file(vault, FIXTURES / fixture)
    n = vault.log.head().seq
    export_file(vault, "google-csv", tmp_path / "out.csv")
    s = import_file(vault, tmp_path / "out.csv", "google-csv")
    assert vault.log.head().seq == n and (s.created, s.updated) == (0, 0)


def test_fields_google_has_no_column_for_ride_in_custom_fields(vault: Vault, tmp_path: Path) -> None:
    """A contact from a vCard (uid, its own typed values) keeps every field through a Google CSV."""
    vault.add(Kind.CONTACT, {"name": "Janet", "uid": "janet-1", "kind": "individual", "revision": "20240101T000000Z",
                             "phones": [typed("+1 555 0100", ["cell", "voice"], pref=3, params={"VALUE": ["uri"]})]},
              Source("cli"), allow_extra=True)
    export_file(vault, "google-csv", tmp_path / "out.csv")
    (janet,) = read(tmp_path / "out.csv").values()
    assert janet["uid"] == "janet-1" and janet["revision"] == "20240101T000000Z"
    assert janet["phones"] == [typed("+1 555 0100", ["cell", "voice"], pref=3, params={"VALUE": ["uri"]})]


# -- the field model's migration: vaults holding bare lists -------------------------------------------------------

OLD = {"name": "Ada Lovelace", "emails": ["ada@example.org"], "phones": ["+44 20 7946 0000"],
       "addresses": [{"city": "London", "street": "12 St James's Square", "type": "home"}]}


def test_readers_accept_the_old_shape(vault: Vault, tmp_path: Path) -> None:
    vault.add(Kind.CONTACT, OLD, Source("cli"))
    export_file(vault, "vcard", tmp_path / "old.vcf")
    text = (tmp_path / "old.vcf").read_text()
    assert "TEL:+44 20 7946 0000" in text and "EMAIL:ada@example.org" in text and "ADR;TYPE=home:;;12 St James" in text
    export_file(vault, "google-csv", tmp_path / "old.csv")
    (row,) = rows(tmp_path / "old.csv")
    assert (row["Phone 1 - Value"], row["Address 1 - Label"], row["Address 1 - City"]) == ("+44 20 7946 0000", "Home", "London")
    assert render_typed_values("phones", '["+44 20 7946 0000"]') == "+44 20 7946 0000"
    assert render_typed_values("addresses", OLD["addresses"]) == "12 St James&#39;s Square, London (home)"


def test_upgrade_appends_one_update_per_old_record_and_keeps_history(vault: Vault) -> None:
    old = vault.add(Kind.CONTACT, OLD, Source("cli"))
    new = vault.add(Kind.CONTACT, upgraded(OLD), Source("cli"))
    assert upgrade_records(vault) == 1 and vault.log.head().seq == 3
    assert vault.get(old) == vault.get(new) == upgraded(OLD)
    assert vault.get(old)["phones"] == [typed("+44 20 7946 0000")]
    assert vault.get(old)["addresses"] == [address({"city": "London", "street": "12 St James's Square"}, ["home"])]
    (first, second) = vault.history(old)
    assert first["data"] == OLD and second["data"] == upgraded(OLD)  # the old version stays as it was
    (event,) = [r.event for r in vault.events() if r.seq == 3]
    assert set(event.changes) == {"emails", "phones", "addresses"} and event.source.name == "upgrade"
    assert upgrade_records(vault) == 0 and vault.log.head().seq == 3  # a second run appends nothing


def test_upgrade_command(runner_vault) -> None:
    run, vault_path = runner_vault
    r = run("upgrade", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"upgraded": 1}
    assert run("upgrade").stdout.startswith("Upgraded 0 records")


@pytest.fixture
def runner_vault(created, monkeypatch):
    from click.testing import CliRunner

    from vault.cli import cli

    path = created[0]
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    with Vault.open(path, PASSPHRASE) as v:
        v.add(Kind.CONTACT, OLD, Source("cli"))

    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--vault", str(path)])
    return run, path


def test_demo_writes_the_typed_shape(tmp_path: Path) -> None:
    import random

    from vault.demo import sample_contact

    c = sample_contact(random.Random(1))
    assert c["phones"][0]["types"] == ["work", "voice"] and texts(c["emails"])[0].endswith("@example.org")
    assert upgraded(c) == c


def test_a_csv_that_is_not_utf8_is_read_as_a_reported_guess(vault: Vault, tmp_path: Path) -> None:
    path = tmp_path / "outlook-era.csv"
    path.write_bytes("Given Name,Family Name,Notes\r\nZoë,Café,naïve\r\nAda,Lovelace,plain\r\n".encode("cp1252"))
    summary = import_file(vault, path)
    assert summary.created == 2 and vault.get(next(iter(
        rid for rid, f in vault.projection.state(Kind.CONTACT) if f.get("family_name") == "Café")))["note"] == "naïve"
    (warning,) = summary.warnings
    assert warning["file"] == str(path) and warning["location"] == "line 2" and "Windows-1252" in warning["reason"]
