"""Google Contacts CSV, both header generations, with the quirks in tests/fixtures/google_csv/."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.google_csv import GoogleCsvImporter
from vault import IngestError
from vault.domain.contacts import texts
from vault.formats import SourceRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "google_csv"


def read(name: str) -> list[SourceRecord]:
    return [r for r in GoogleCsvImporter().read(FIXTURES / name) if isinstance(r, SourceRecord)]


def test_current_header_bom_separators_labels_and_multiline_cells() -> None:
    ada, acme, juergen, other = read("contacts.csv")
    f = ada.fields
    assert f["name"] == "Ada Lovelace" and f["organization"] == "Analytical Engines Ltd"
    assert texts(f["emails"]) == ["ada@example.org", "ada.work@example.org", "ada.home@example.net"]  # " ::: " split
    assert f["groups"] == ["Friends"] and f["starred"] is True  # system labels dropped, starred kept
    assert f["note"] == 'First line of the note.\nSecond line, with "quotes" and a comma.'
    assert f["addresses"] == [{"street": "12 St James's Square", "city": "London", "code": "SW1Y 4JH",
                               "country": "United Kingdom", "types": ["home"], "label": None, "pref": None,
                               "formatted": "12 St James's Square\nLondon SW1Y 4JH\nUnited Kingdom"}]
    assert ada.location == "row 1 (line 5)"  # the multi-line cells count as lines
    assert acme.fields["name"] == "Acme Plumbing" and texts(acme.fields["phones"]) == ["+1 555 0100"]
    assert juergen.fields["name"] == "Dr. Jürgen Müller Jr." and juergen.fields["addresses"][0]["formatted"]
    assert other.fields == {"emails": [{"value": "someone@example.com", "types": [], "label": None, "pref": 1}],
                            "name": "someone@example.com"}  # a bare "* " label: primary, no label


def test_legacy_header() -> None:
    grace, alan = read("legacy.csv")
    assert texts(grace.fields["phones"]) == ["+1 555 0199", "+1 555 0198"] and grace.fields["department"] == "Computing"
    assert grace.fields["title"] == "Rear Admiral" and grace.fields["groups"] == ["Navy"]
    assert alan.fields["addresses"][0]["types"] == ["work"]


def test_source_ids_are_stable_and_distinct() -> None:
    assert [r.source_id for r in read("contacts.csv")] == [r.source_id for r in read("contacts.csv")]
    assert len({r.source_id for r in read("contacts.csv")}) == 4


def test_a_runaway_quoted_cell_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("First Name,Last Name,E-mail 1 - Value\r\n\"Ada" + ",x" * 400_000 + "\r\n")
    with pytest.raises(IngestError, match="broken CSV"):
        list(GoogleCsvImporter().read(p))


def test_a_truncated_file_is_refused_as_a_whole(tmp_path: Path) -> None:
    text = (FIXTURES / "legacy.csv").read_text()
    p = tmp_path / "c.csv"
    p.write_text(text[: text.rindex(",Oxford Road")])  # cut mid-row, as an interrupted download leaves it
    with pytest.raises(IngestError, match=r"row 2 \(line 3\)\): the file ends in the middle of a row"):
        list(GoogleCsvImporter().read(p))
    p.write_text('First Name,Last Name\r\n"Ada,Lovelace\r\n')
    with pytest.raises(IngestError, match=r"\(line 2\): broken CSV"):
        list(GoogleCsvImporter().read(p))
