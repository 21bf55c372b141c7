"""vCard 2.1 / 3.0 / 4.0: the quirks in tests/fixtures/vcard/ (see README-formats.md) read into the right fields."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingest
from ingest.vcard import VcardImporter
from vault import IngestError, Kind, Vault
from vault.domain.contacts import texts
from vault.formats.exporting import export_file
from vault.formats import SourceRecord
from vault.formats.importing import import_file

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vcard"


@pytest.fixture(scope="module")
def cards() -> list[SourceRecord]:
    out = list(VcardImporter().read(FIXTURES / "contacts.vcf"))
    assert all(isinstance(r, SourceRecord) for r in out)
    return out


def test_vcard21_quoted_printable_soft_breaks_charsets_and_bare_types(cards) -> None:
    f = cards[0].fields
    assert f["name"] == "Dr. Jürgen Müller" and f["family_name"] == "Müller" and f["name_prefix"] == "Dr."
    assert f["note"] == "Met at the Stammtisch.\nAllergic to nüsse; prefers tea over coffee."  # QP soft break joined
    assert texts(f["phones"]) == ["+49 170 1234567", "030 123456", "030 654321"]
    assert texts(f["emails"]) == ["juergen@example.de", "j.mueller@example.com"]
    assert f["addresses"][0] == {"street": "Hauptstraße 1", "city": "Berlin", "code": "10115",
                                 "country": "Deutschland", "types": ["home"], "label": None, "pref": None}
    assert f["addresses"][1]["types"] == ["work"]
    (photo,) = cards[0].attachments
    assert photo.field == "photo" and photo.content_type == "image/jpeg" and photo.data.startswith(b"\xff\xd8")
    assert cards[0].location == "card 1 (line 1)"


def test_raw_windows_1252_bytes_under_a_charset(cards) -> None:
    f = cards[1].fields
    assert f["name"] == "Renée Dupré" and f["organization"] == "Société Générale" and f["org_units"] == ["Trésorerie"]


def test_vcard30_groups_several_values_escapes_and_photo(cards) -> None:
    r = cards[2]
    assert r.source_id == "7A0C1B2D-3E4F-4A5B-8C9D-0E1F2A3B4C5D"
    f = r.fields
    assert texts(f["emails"]) == ["ada@example.org", "ada.home@example.net"]  # item1./item2. group prefixes
    assert f["groups"] == ["friends", "science, history"]
    assert f["note"] == "Wrote the first published algorithm; notes on the Engine, translated from Menabrea.\nSecond line."
    assert [a["types"] for a in f["addresses"]] == [["home"], ["work"]] and f["addresses"][1]["extended"] == "Floor 2"
    assert f["birthday"] == "1815-12-10" and texts(f["urls"]) == ["https://example.org/ada"]
    assert r.attachments[0].data.startswith(b"\x89PNG") and r.attachments[0].content_type == "image/png"


def test_cards_missing_n_or_fn(cards) -> None:
    assert cards[3].fields["name"] == "Acme Plumbing" and "family_name" not in cards[3].fields
    assert cards[4].fields["name"] == "Rear Admiral Grace Brewster Murray Hopper"


def test_vcard40_data_uri_photo_and_tel_uri(cards) -> None:
    f = cards[5].fields
    assert texts(f["phones"]) == ["+44-161-555-0199"] and cards[5].source_id == "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    assert cards[5].attachments[0].data.startswith(b"\x89PNG")


def test_photos_go_to_the_blob_store_and_back_out(vault: Vault, tmp_path: Path) -> None:
    import_file(vault, FIXTURES / "contacts.vcf")
    ada = next(f for _, f in vault.projection.state(Kind.CONTACT) if f["name"] == "Ada Lovelace")
    assert set(ada["photo"]) == {"blob", "size", "type"}
    assert vault.get_blob(ada["photo"]["blob"]).startswith(b"\x89PNG")
    export_file(vault, "vcard", tmp_path / "out.vcf")
    text = (tmp_path / "out.vcf").read_text()
    assert text.count("BEGIN:VCARD") == 6 and "PHOTO;ENCODING=b;TYPE=PNG:" in text and "X-LIFEVAULT-ID:c_" in text


def test_fields_vcard_has_no_property_for_survive_the_round_trip(vault: Vault, tmp_path: Path) -> None:
    from vault import Source

    vault.add(Kind.CONTACT, {"name": "Odd", "starred": True, "department": "R&D; labs"}, Source("cli"), allow_extra=True)
    export_file(vault, "vcard", tmp_path / "odd.vcf")
    (r,) = VcardImporter().read(tmp_path / "odd.vcf")
    assert r.fields["starred"] is True and r.fields["department"] == "R&D; labs"


@pytest.mark.parametrize("text, message", [
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cut\r\n", "card 1 (line 1)): the file ends inside a card (truncated?)"),
    ("Name,Email\r\nAda,ada@x\r\n", "(line 1): not a vCard file"),
    ("BEGIN:VCARD\r\nFN:A\r\nEND:VCARD\r\ngarbage\r\n", "(line 4): text outside any card"),
])
def test_truncated_or_foreign_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "x.vcf"
    p.write_text(text)
    with pytest.raises(IngestError) as e:
        list(VcardImporter().read(p))
    assert message in str(e.value)


def test_an_overlong_line_is_refused_without_reading_it_whole(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ingest, "MAX_LINE", 1024)
    p = tmp_path / "x.vcf"
    p.write_text("BEGIN:VCARD\r\nNOTE:" + "x" * 5000 + "\r\nEND:VCARD\r\n")
    with pytest.raises(IngestError, match=r"\(line 2\): the line is longer than"):
        list(VcardImporter().read(p))
