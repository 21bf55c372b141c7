"""JSON Lines archive: records keep their ids, blobs travel inside, the shape README.md documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault import IngestError, Kind, Source, Vault
from vault.formats.exporting import export_file
from vault.formats.importing import import_file

from conftest import PASSPHRASE

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jsonl"


def test_archive_moves_records_and_blobs_between_vaults(vault: Vault, tmp_path: Path) -> None:
    import_file(vault, FIXTURES / "archive.jsonl")
    ada = vault.get("c_4k9x0m2q7r1t")
    assert ada["nickname"] == "Enchantress of Numbers" and vault.get_blob(ada["photo"]["blob"]).startswith(b"\x89PNG")
    assert vault.get("n_7h2k4m6p8r0t")["nested"] == {"deep": [1, {"x": None}]}
    assert vault.get("m_0a1b2c3d4e5f")["attachments"][0]["name"] == "plot.png"
    export_file(vault, "jsonl", tmp_path / "a.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert lines[0] == {"lifevault": "records", "version": 1}
    assert {ln["id"] for ln in lines[1:]} == {"c_4k9x0m2q7r1t", "n_7h2k4m6p8r0t", "m_0a1b2c3d4e5f"}
    other, _ = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min")
    with other:
        import_file(other, tmp_path / "a.jsonl")
        for kind in Kind:
            mine = {rid: {k: v for k, v in f.items() if k not in ("photo", "attachments")} for rid, f in vault.projection.state(kind)}
            theirs = {rid: {k: v for k, v in f.items() if k not in ("photo", "attachments")} for rid, f in other.projection.state(kind)}
            assert mine == theirs
        assert other.get_blob(other.get("c_4k9x0m2q7r1t")["photo"]["blob"]) == vault.get_blob(ada["photo"]["blob"])


def test_records_created_by_hand_round_trip_too(vault: Vault, tmp_path: Path) -> None:
    vault.add(Kind.CONTACT, {"name": "By hand", "emails": ["h@x.org"]}, Source("cli"))
    export_file(vault, "jsonl", tmp_path / "a.jsonl")
    n = vault.log.head().seq
    assert import_file(vault, tmp_path / "a.jsonl").unchanged == 1 and vault.log.head().seq == n


@pytest.mark.parametrize("text, message", [
    ('{"lifevault": "records", "version": 1}\n{"kind": "note", "id": "n_a1", "fields": {"title": "cut', "truncated"),
    ('{"lifevault": "records", "version": 99}\n', "header this lifevault does not know"),
    ("not json at all\n", "(line 1): not JSON Lines"),
])
def test_truncated_unknown_or_foreign_files_are_refused(vault: Vault, tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(text)
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_file(vault, p, "jsonl")
    assert vault.log.head().seq == 0


def test_a_record_of_the_wrong_kind_for_its_id_is_skipped(vault: Vault, tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"kind": "note", "id": "c_abc", "fields": {"title": "t"}}\n{"kind": "note", "id": "n_ok", "fields": {}}\n')
    s = import_file(vault, p, "jsonl")
    assert s.created == 1 and s.skipped[0]["location"] == "line 1" and "not a note id" in s.skipped[0]["reason"]


def test_values_the_log_refuses_are_skipped_records_not_a_failed_import(vault: Vault, tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"kind": "note", "id": "n_nan", "fields": {"score": NaN}}\n'
                 '{"kind": "note", "id": "n_sur", "fields": {"title": "\\ud800"}}\n'
                 '{"kind": "note", "id": "n_ok", "fields": {"title": "fine"}}\n'
                 '{"kind": "note", "id": "n_deep", "fields": {"x": %s1%s}}\n' % ("[" * 990, "]" * 990))
    s = import_file(vault, p, "jsonl")
    assert s.created == 1 and [b["location"] for b in s.skipped] == ["line 1", "line 2", "line 4"]
    assert "nested too deeply" in s.skipped[2]["reason"]  # by the reader or by the engine, depending on the stack
