"""Markdown notes with YAML front matter (Obsidian): the quirks in tests/fixtures/markdown/."""

from __future__ import annotations

from pathlib import Path

from ingest.markdown import MarkdownImporter
from vault import Kind, Source, Vault
from vault.exporting import export_file
from vault.formats import BadRecord, SourceRecord
from vault.importing import import_file

FIXTURES = Path(__file__).parent / "fixtures" / "markdown"


def notes() -> dict[str, SourceRecord]:
    return {r.source_id: r for r in MarkdownImporter().read(FIXTURES / "vault")}


def test_front_matter_tags_dates_and_extra_keys() -> None:
    f = notes()["Projects/Garden plan.md"].fields
    assert f["title"] == "Garden plan 2024" and f["tags"] == ["garden", "projects"]
    assert f["created"] == "2024-03-01" and f["updated"] == "2024-03-05T18:30:00"
    assert f["aliases"] == ["Allotment", "Veg patch"] and f["rating_1_5"] == 4 and f["status"] == "in progress"
    assert f["body"].startswith("## Beds\n")


def test_no_front_matter_crlf_bom_empty_block_and_hidden_folders() -> None:
    n = notes()
    assert set(n) == {"Welcome.md", "Projects/Garden plan.md", "Daily/2024-03-05.md", "Daily/2024-03-06.md",
                      "Empty properties.md"}  # .obsidian/ and the PNG are not notes
    assert n["Welcome.md"].fields["title"] == "Welcome" and n["Welcome.md"].fields["body"].startswith("# Welcome")
    crlf = n["Daily/2024-03-05.md"].fields
    assert crlf["tags"] == ["daily", "journal"] and crlf["body"] == "Met Ada for lunch.\r\nTalked about engines.\r\n"
    assert n["Daily/2024-03-06.md"].fields["title"] == "Tuesday" and n["Daily/2024-03-06.md"].fields["date"] == "2024-03-06"
    assert n["Empty properties.md"].fields["body"] == "Body after an empty front matter.\n"


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bomb.md").write_text("---\na: &a [x, x]\nb: [*a, *a]\n---\nbody\n")
    (r,) = MarkdownImporter().read(tmp_path)
    assert isinstance(r, BadRecord) and "aliases are not allowed" in r.reason


def test_notes_from_elsewhere_export_to_safe_names_and_come_back_to_the_same_record(vault: Vault, tmp_path: Path) -> None:
    nid = vault.add(Kind.NOTE, {"title": "../../etc/passwd?", "body": "x", "path": "../escape.md"}, Source("cli"))
    export_file(vault, "markdown", tmp_path / "out")
    (written,) = [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.md")]
    assert written == "etcpasswd.md"
    s = import_file(vault, tmp_path / "out")
    assert s.created == 0 and vault.get(nid)["path"] == "etcpasswd.md"  # the front matter's id finds the note
