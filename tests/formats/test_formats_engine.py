"""The import engine and the format commands: diffs, mirror, undo, provenance, export at T, the CLI surface."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vault import Kind, Source, TamperDetected, Vault
from vault.domain.contacts import texts, typed
from vault.formats.exporting import export_file
from vault.formats.importing import UnknownImport, derive_record_id, import_file, undo_import
from vault.domain.instants import parse_instant


def card(name: str, *lines: str) -> str:
    return "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", f"FN:{name}", f"UID:{name.lower()}", *lines, "END:VCARD"]) + "\r\n"


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    p = tmp_path / "v1.vcf"
    p.write_text(card("Ada", "EMAIL:ada@example.org", "NOTE:first") + card("Bob", "TEL:+1 555 0100"))
    return p


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    """A newer export: Ada's email changed and her note removed, Bob unchanged, Cy new."""
    p = tmp_path / "v2.vcf"
    p.write_text(card("Ada", "EMAIL:ada@new.example") + card("Bob", "TEL:+1 555 0100") + card("Cy", "EMAIL:cy@x.org"))
    return p


def rid(vault: Vault, uid: str) -> str:
    return derive_record_id(vault, Kind.CONTACT, "vcard", uid)


def test_a_newer_export_appends_only_the_differences(vault: Vault, v1: Path, v2: Path) -> None:
    import_file(vault, v1)
    before = vault.log.head().seq
    s = import_file(vault, v2)
    assert (s.created, s.updated, s.unchanged) == (1, 1, 1)
    new = list(vault.events(parse_instant(f"seq:{before}")))
    assert len(new) == 2
    update = next(r.event for r in new if r.event.type.value == "updated")
    assert update.record_id == rid(vault, "ada") and dict(update.changes) == {"emails": [typed("ada@new.example")], "note": None}


def test_events_record_importer_version_file_hash_fingerprint_and_import_id(vault: Vault, v1: Path) -> None:
    s = import_file(vault, v1)
    detail = next(iter(vault.events())).event.source.detail
    assert detail["importer"] == "vcard" and detail["version"] == "2" and detail["import_id"] == s.import_id
    assert detail["file_sha256"] == hashlib.sha256(v1.read_bytes()).hexdigest() and len(detail["fingerprint"]) == 32


def test_missing_records_are_kept_unless_mirror(vault: Vault, v1: Path, tmp_path: Path) -> None:
    import_file(vault, v1)
    only_bob = tmp_path / "only-bob.vcf"
    only_bob.write_text(card("Bob", "TEL:+1 555 0100"))
    assert import_file(vault, only_bob).deleted == 0
    assert vault.get(rid(vault, "ada"))["name"] == "Ada"
    s = import_file(vault, only_bob, mirror=True)
    assert s.deleted == 1 and vault.projection.status(Kind.CONTACT, rid(vault, "ada")) == "deleted"
    assert import_file(vault, v1).created == 1  # a record deleted by an import comes back with the source


def test_edits_in_the_vault_survive_reimport_of_an_unchanged_source(vault: Vault, v1: Path, v2: Path) -> None:
    import_file(vault, v1)
    ada, bob = rid(vault, "ada"), rid(vault, "bob")
    vault.update(ada, {"nickname": "Countess", "note": "mine"}, Source("cli"))
    vault.delete(bob, Source("cli"))
    s = import_file(vault, v1)
    assert (s.created, s.updated) == (0, 0)
    assert vault.get(ada)["note"] == "mine"  # the source did not change: the edit stands
    assert vault.projection.status(Kind.CONTACT, bob) == "deleted"  # deleted by the user: not revived
    import_file(vault, v2)  # the source changed the email and dropped the note it had given
    assert texts(vault.get(ada)["emails"]) == ["ada@new.example"] and vault.get(ada)["nickname"] == "Countess"


def test_undo_import_appends_compensating_events_and_keeps_history(vault: Vault, v1: Path, v2: Path) -> None:
    first = import_file(vault, v1)
    second = import_file(vault, v2, mirror=True)
    u = undo_import(vault, second.import_id)
    assert (u.deleted, u.updated) == (1, 1)  # Cy removed again, Ada's fields back
    assert texts(vault.get(rid(vault, "ada"))["emails"]) == ["ada@example.org"] and vault.get(rid(vault, "ada"))["note"] == "first"
    assert len(vault.history(rid(vault, "ada"))) == 3
    head = vault.log.head().seq
    assert undo_import(vault, second.import_id).deleted == 0 and vault.log.head().seq == head  # nothing left to undo
    undo_import(vault, first.import_id)
    assert vault.stats()["contacts"] == 0
    with pytest.raises(UnknownImport, match="No import 'imp_nothere'"):
        undo_import(vault, "imp_nothere")


def test_export_at_an_instant_writes_that_state(vault: Vault, v1: Path, v2: Path, tmp_path: Path) -> None:
    import_file(vault, v1)
    then = vault.log.head().seq
    import_file(vault, v2)
    assert export_file(vault, "vcard", tmp_path / "then.vcf", parse_instant(f"seq:{then}")) == 2
    assert "ada@example.org" in (tmp_path / "then.vcf").read_text()
    assert export_file(vault, "vcard", tmp_path / "now.vcf") == 3


def test_export_never_overwrites_and_leaves_no_partial_file(vault: Vault, v1: Path, tmp_path: Path, monkeypatch) -> None:
    import_file(vault, v1)
    (tmp_path / "taken.vcf").write_text("keep me")
    with pytest.raises(Exception, match="already exists"):
        export_file(vault, "vcard", tmp_path / "taken.vcf")
    assert (tmp_path / "taken.vcf").read_text() == "keep me"
    bid = vault.put_blob(b"\x89PNG photo")
    vault.add(Kind.CONTACT, {"name": "Broken", "photo": {"blob": bid}}, Source("cli"))
    def unreadable(blob_id: str) -> bytes:  # a blob that fails mid-export (as a damaged one would)
        raise TamperDetected(None, f"blob {blob_id[:16]}… does not decrypt")
    monkeypatch.setattr(vault, "get_blob", unreadable)
    with pytest.raises(TamperDetected):
        export_file(vault, "vcard", tmp_path / "out.vcf")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == []


def test_same_namespace_same_record_across_importers(vault: Vault) -> None:
    assert derive_record_id(vault, Kind.MESSAGE, "mail", "<a@x>") == derive_record_id(vault, Kind.MESSAGE, "mail", "<a@x>")
    assert derive_record_id(vault, Kind.MESSAGE, "mail", "<a@x>") != derive_record_id(vault, Kind.MESSAGE, "sms", "<a@x>")


# -- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_import_json_summary_log_and_undo(run, v1: Path) -> None:
    r = run("import", str(v1), "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["format"], s["created"], s["updated"], s["unchanged"], s["skipped"]) == ("vcard", 2, 0, 0, [])
    assert s["import_id"] in run("log").stdout
    r = run("import", "vcard", str(v1))
    assert "0 created, 0 updated, 2 unchanged" in r.stdout and "Importing v1.vcf" in r.stderr
    assert "Importing" not in run("import", str(v1), "--silent").stderr
    r = run("undo-import", s["import_id"])
    assert r.exit_code == 0 and "2 deleted" in r.stdout


def test_cli_bad_records_strict_and_wrong_format(run, tmp_path: Path) -> None:
    bad = Path(__file__).parent.parent / "fixtures" / "vcard" / "one-bad.vcf"
    r = run("import", str(bad))
    assert r.exit_code == 0 and "1 skipped" in r.stdout and "skipped card 2 (line 6): cannot parse" in r.stderr
    r = run("import", str(bad), "--strict")
    assert r.exit_code == 1 and "(card 2 (line 6)): cannot parse the card" in r.stderr and "--strict" in r.stderr
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01binary")
    r = run("import", str(junk))
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "no importer recognises" in r.stderr
    r = run("import", "vcard", str(junk))
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: {junk}: is binary, not a vCard file."
    r = run("import", "nosuchformat", str(junk))
    assert r.exit_code == 1 and "No importer named 'nosuchformat'" in r.stderr


def test_cli_export_and_markdown_folder_round_trip(run, tmp_path: Path) -> None:
    notes = Path(__file__).parent.parent / "fixtures" / "markdown" / "vault"
    assert run("import", str(notes)).exit_code == 0
    r = run("export", "markdown", str(tmp_path / "out"))
    assert r.exit_code == 0 and "Wrote 5 records" in r.stderr
    assert (tmp_path / "out" / "Projects" / "Garden plan.md").exists()
    r = run("import", str(tmp_path / "out"), "--json")
    assert json.loads(r.stdout)["unchanged"] == 5
    r = run("export", "markdown", str(tmp_path / "out"))
    assert r.exit_code == 1 and "already exists" in r.stderr
