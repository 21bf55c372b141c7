"""Evernote 10 exports: CDATA as Evernote writes it, and every note attribute (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingest
from ingest import safexml
from ingest.enex import EnexImporter
from vault import Vault
from vault.formats import Notice, SourceRecord
from vault.formats.importing import import_file

EVERNOTE10 = Path(__file__).parent.parent / "fixtures" / "enex" / "evernote10.enex"


def notes(path: Path = EVERNOTE10) -> dict[str, SourceRecord]:
    return {r.fields["title"]: r for r in EnexImporter().read(path) if isinstance(r, SourceRecord)}


def test_nested_and_wrongly_split_cdata_import_whole() -> None:
    """Issue 12: an Evernote 10 export with nested CDATA was refused whole as "not well-formed XML"."""
    n = notes()
    assert len(n) == 3
    parser = n["Parser notes"].fields
    assert "<![CDATA[if (a < b) return c[d[0]];]]></div>" in parser["enml"]  # the split ]]> joined again
    assert parser["body"] == "A CDATA example: if (a < b) return c[d[0]];\nEnd of the sample."
    broken = n["Contact from a mail"].fields  # Evernote's own bad split: nothing after it is lost
    assert broken["body"] == "Write to Charles <charles@example.org]]>\nthe engine page"
    assert broken["enml"].endswith('<div><a href="https://example.org/engine">the engine page</a></div></en-note>')
    assert n["Errands"].fields["body"].startswith("Pasted from a document:\ufffdpage two")  # XML cannot carry \x0c
    (notice,) = [r for r in EnexImporter().read(EVERNOTE10) if isinstance(r, Notice)]  # and it is said
    assert notice.location == "note 3 (line 43)" and "read as U+FFFD" in notice.message


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_the_same_notes_whatever_the_read_size(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    whole = {t: r.fields for t, r in notes().items()}
    monkeypatch.setattr(safexml, "_CHUNK", chunk)  # CDATA markers and tags cut between reads
    assert {t: r.fields for t, r in notes().items()} == whole


def test_every_note_attribute_is_kept() -> None:
    """Issue 12: location, subject date, reminders, source application were dropped."""
    f = notes()["Parser notes"].fields
    assert (f["latitude"], f["longitude"], f["altitude"]) == ("59.91273", "10.74609", "23.0")  # as written
    assert f["subject_date"] == "2024-05-31T00:00:00+00:00" and f["place_name"] == "Oslo"
    assert f["reminder_order"] == "1717236000000" and f["reminder_time"] == "2024-06-05T08:00:00+00:00"
    assert f["reminder_done_time"] == "2024-06-05T09:30:00+00:00"
    assert (f["author"], f["source_app"], f["source_url"], f["source_application"]) == (
        "Ada Lovelace", "mobile.ios", "https://example.org/parsers", "com.example.reader")
    assert f["content_class"] == "evernote.example.recipe"
    assert f["application_data"] == {"com.example.reader.id": "article-4411"}


def test_evernote10_tasks_reminders_and_resource_descriptions_are_kept() -> None:
    errands = notes()["Errands"]
    (task,) = errands.fields["tasks"]
    assert task["title"] == "Buy stamps" and task["dueDate"] == "2024-06-06T16:00:00+00:00"
    assert task["reminder"]["reminderDate"] == "2024-06-06T15:00:00+00:00" and task["timeZone"] == "Europe/Oslo"
    (att,) = errands.attachments
    assert (att.name, att.content_type, att.data) == ("hello.txt", "text/plain", b"hello")
    assert errands.fields["resources"] == [{"mime": "text/plain", "resource-attributes": {
        "source-url": "https://example.org/hello.txt", "timestamp": "2024-06-04T07:05:00+00:00",
        "file-name": "hello.txt", "attachment": "true"}}]


def test_reimport_appends_nothing(vault: Vault) -> None:
    first = import_file(vault, EVERNOTE10, "enex")
    n = vault.log.head().seq
    again = import_file(vault, EVERNOTE10, "enex")
    assert first.created == 3 and vault.log.head().seq == n and again.unchanged == 3


def test_content_larger_than_a_record_is_refused_in_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_RECORD", 1024)
    path = tmp_path / "big.enex"
    path.write_text('<?xml version="1.0"?>\n<en-export><note><title>t</title><content><![CDATA['
                    + "x" * 4096 + "]]></content></note></en-export>\n")
    with pytest.raises(ingest.IngestError, match="one value is longer than"):
        list(EnexImporter().read(path))
