"""Markdown notes with YAML front matter (Obsidian): the quirks in tests/fixtures/markdown/."""

from __future__ import annotations

from pathlib import Path

import os
import shutil


from ingest.markdown import MarkdownImporter
from vault import Kind, Source, Vault
from vault.formats.exporting import export_file
from vault.formats import BadRecord, SourceRecord
from vault.formats.importing import import_file

FIXTURES = Path(__file__).parent.parent / "fixtures" / "markdown"


def notes() -> dict[str, SourceRecord]:
    return {r.source_id: r for r in MarkdownImporter().read(FIXTURES / "vault")}


def test_front_matter_tags_dates_and_extra_keys() -> None:
    f = notes()["Projects/Garden plan.md"].fields
    assert f["title"] == "Garden plan 2024" and f["tags"] == ["garden", "projects"]
    assert f["created"] == "2024-03-01" and f["updated"] == "2024-03-05T18:30:00"
    props = f["properties"]  # every key kept verbatim in one field (issue 12: keys were rewritten)
    assert props["aliases"] == ["Allotment", "Veg patch"] and props["rating (1-5)"] == 4
    assert props["status"] == "in progress" and props["tags"] == ["garden", "#projects"]
    assert f["body"].startswith("## Beds\n")


def test_no_front_matter_crlf_bom_empty_block_and_hidden_folders() -> None:
    n = notes()
    assert set(n) == {"Welcome.md", "Projects/Garden plan.md", "Daily/2024-03-05.md", "Daily/2024-03-06.md",
                      "Empty properties.md"}  # .obsidian/ and the PNG are not notes
    assert n["Welcome.md"].fields["title"] == "Welcome" and n["Welcome.md"].fields["body"].startswith("# Welcome")
    crlf = n["Daily/2024-03-05.md"].fields
    assert crlf["tags"] == ["daily", "journal"] and crlf["body"] == "Met Ada for lunch.\r\nTalked about engines.\r\n"
    assert n["Daily/2024-03-06.md"].fields["title"] == "Tuesday" and n["Daily/2024-03-06.md"].fields["properties"]["date"] == "2024-03-06"
    assert n["Empty properties.md"].fields["body"] == "Body after an empty front matter.\n"


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bomb.md").write_text("---\na: &a [x, x]\nb: [*a, *a]\n---\nbody\n")
    (r,) = MarkdownImporter().read(tmp_path)
    assert isinstance(r, BadRecord) and "aliases are not allowed" in r.reason


def test_notes_from_elsewhere_export_to_safe_names_and_come_back_to_the_same_record(vault: Vault, tmp_path: Path) -> None:
    nid = vault.add(Kind.NOTE, {"title": "../../etc/passwd?", "body": "x", "path": "../escape.md"}, Source("cli"),
                    allow_extra=True)  # fields an importer keeps as extras
    export_file(vault, "markdown", tmp_path / "out")
    (written,) = [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.md")]
    assert written == "etcpasswd.md"
    s = import_file(vault, tmp_path / "out")
    assert s.created == 0 and vault.get(nid)["path"] == "etcpasswd.md"  # the front matter's id finds the note


OBSIDIAN = FIXTURES / "obsidian"


def obsidian(path: Path = OBSIDIAN) -> tuple[dict[str, SourceRecord], list[BadRecord]]:
    items = list(MarkdownImporter().read(path))
    return ({r.source_id: r for r in items if isinstance(r, SourceRecord)},
            [r for r in items if isinstance(r, BadRecord)])


def test_front_matter_is_read_as_obsidian_reads_it_not_as_yaml_1_1() -> None:
    """Issue 12: `NO` became false, `0755` 493, `12:30` 750; keys were rewritten; empty keys vanished."""
    props = obsidian()[0]["Trips/Oslo.md"].fields["properties"]
    assert props["country_code"] == "NO" and props["mode"] == "0755" and props["departure"] == "12:30"
    assert props["título"] == "sí" and props["日本語"] == "テキスト" and props["key with spaces"] == "kept as typed"
    assert "empty key" in props and props["empty key"] is None
    assert props["rating"] == 4 and props["done"] is True  # numbers and true/false that write back the same
    assert props["price"] == "3.50" and props["quoted"] == "yes" and props["created"] == "2024-03-05"
    assert list(props)[:3] == ["title", "country_code", "mode"]  # in the order written


def test_embedded_files_are_attachments_named_by_their_place_in_the_folder() -> None:
    """Issue 12: `![[diagram.png]]` was ignored without a word."""
    notes, bad = obsidian()
    oslo = notes["Trips/Oslo.md"].attachments
    assert [(a.name, a.content_type) for a in oslo] == [("assets/diagram.png", "image/png"),
                                                        ("Trips/img/harbour map.png", "image/png")]
    assert oslo[0].data == (OBSIDIAN / "assets/diagram.png").read_bytes()  # found by name, once though embedded twice
    assert [a.name for a in notes["Packing list.md"].attachments] == ["Trips/img/harbour map.png"]
    assert bad == []  # a web address and an embedded note are not files


def test_export_writes_properties_and_files_back_as_they_were(vault: Vault, tmp_path: Path) -> None:
    import_file(vault, OBSIDIAN, "markdown")
    n = vault.log.head().seq
    export_file(vault, "markdown", tmp_path / "out")
    text = (tmp_path / "out/Trips/Oslo.md").read_text()
    for line in ("country_code: 'NO'\n", "mode: '0755'\n", "departure: '12:30'\n", "título: sí\n",
                 "日本語: テキスト\n", "key with spaces: kept as typed\n", "empty key:\n", "rating: 4\n",
                 "done: true\n", "price: '3.50'\n"):
        assert line in text  # strings YAML 1.1 would misread are quoted, so every reader gets them right
    assert (tmp_path / "out/Trips/img/harbour map.png").read_bytes() == (OBSIDIAN / "Trips/img/harbour map.png").read_bytes()
    again, _ = obsidian(tmp_path / "out")
    assert again["Trips/Oslo.md"].fields == obsidian()[0]["Trips/Oslo.md"].fields
    s = import_file(vault, tmp_path / "out", "markdown")
    assert vault.log.head().seq == n and (s.created, s.updated) == (0, 0)


def test_an_edit_in_the_vault_is_what_the_export_writes(vault: Vault, tmp_path: Path) -> None:
    import_file(vault, OBSIDIAN, "markdown")
    (nid,) = [rid for rid, f in vault.projection.state(Kind.NOTE, vault.projection.seq) if f["path"] == "Trips/Oslo.md"]
    props = dict(vault.get(nid)["properties"], country_code="SE")
    vault.update(nid, {"title": "Stockholm weekend", "properties": props}, Source("cli"), allow_extra=True)
    export_file(vault, "markdown", tmp_path / "out")
    fields = obsidian(tmp_path / "out")[0]["Trips/Oslo.md"].fields
    assert fields["title"] == "Stockholm weekend" and fields["properties"]["country_code"] == "SE"


def test_links_outside_the_folder_are_refused_one_line_each_and_never_read(tmp_path: Path) -> None:
    """Issue 12: a symlink inside the vault pointing outside it was followed and imported."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("SECRET note\n")
    (outside / "secret.png").write_bytes(b"SECRET image")
    root = tmp_path / "vault"
    shutil.copytree(OBSIDIAN, root)
    os.symlink(outside / "secret.md", root / "Linked.md")
    os.symlink(outside, root / "Linked folder")
    (root / "Sneaky.md").write_text("![](../outside/secret.png)\n![[../outside/secret.png]]\n")
    os.symlink(outside / "secret.png", root / "assets" / "inside-link.png")
    (root / "Via link.md").write_text("![[inside-link.png]]\n")
    notes, bad = obsidian(root)
    assert sorted((b.location, b.reason.split(";")[0]) for b in bad) == [
        ("Linked folder", "a link to outside the folder"),
        ("Linked.md", "a link to outside the folder"),
        ("Sneaky.md", "the embed ../outside/secret.png leads outside the folder"),
        ("Sneaky.md", "the embed ../outside/secret.png leads outside the folder"),
        ("assets/inside-link.png", "a link to outside the folder"),  # any linked file, a note's or not
    ]
    assert "Sneaky.md" in notes and not notes["Sneaky.md"].attachments and not notes["Via link.md"].attachments
    read = repr([(r.fields, r.attachments) for r in notes.values()])
    assert "SECRET" not in read and "Linked.md" not in notes


def test_a_note_that_is_not_utf8_is_skipped_with_its_line_never_guessed(tmp_path: Path) -> None:
    """Issue 12: invalid UTF-8 was silently read as Latin-1."""
    (tmp_path / "Good.md").write_text("fine\n")
    (tmp_path / "Latin.md").write_bytes("first line\ncaf\xe9 \xff\xfe\n".encode("latin-1"))
    notes, bad = obsidian(tmp_path)
    assert list(notes) == ["Good.md"]
    assert [(b.location, b.reason) for b in bad] == [("Latin.md", "line 2 is not UTF-8 (byte 0xe9); it was not guessed")]


class _VersionOne:
    """What importer version 1 made of Projects/Garden plan.md: extra keys as renamed top-level fields."""

    name, version, description = "markdown", "1", "the Markdown importer as it was"

    def detect(self, path: Path) -> bool:
        return True

    def read(self, path: Path):
        body = (path / "Projects/Garden plan.md").read_text().split("---\n", 2)[2]
        yield SourceRecord(Kind.NOTE, "Projects/Garden plan.md", {
            "path": "Projects/Garden plan.md", "body": body, "title": "Garden plan 2024", "tags": ["garden", "projects"],
            "created": "2024-03-01", "updated": "2024-03-05T18:30:00", "aliases": ["Allotment", "Veg patch"],
            "cssclasses": "wide", "status": "in progress", "rating_1_5": 4}, (), "Projects/Garden plan.md")


def test_a_vault_imported_by_version_1_is_upgraded_by_update_events(vault: Vault) -> None:
    from vault.formats import registry as plugins

    old = plugins.Registry()
    old.importers["markdown"] = plugins.Provided(_VersionOne(), "test")
    import_file(vault, FIXTURES / "vault", "markdown", registry=old)
    n = vault.log.head().seq
    s = import_file(vault, FIXTURES / "vault", "markdown")
    assert s.updated == 1 and vault.log.head().seq == n + s.created + 1  # the other notes were never imported
    (nid,) = [rid for rid, f in vault.projection.state(Kind.NOTE, vault.projection.seq) if f["path"] == "Projects/Garden plan.md"]
    note = vault.get(nid)
    assert "rating_1_5" not in note and "aliases" not in note and note["properties"]["rating (1-5)"] == 4
    assert [v["event"] for v in vault.history(nid)] == ["created", "updated"]  # history kept, not rewritten
    assert vault.history(nid)[0]["data"]["rating_1_5"] == 4
