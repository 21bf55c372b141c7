"""Google Keep: a note in Keep's trash is a deleted record whose content stays in history (issue 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault import Kind, Vault
from vault.formats.importing import derive_record_id, import_file

TAKEOUT = Path(__file__).parent.parent / "fixtures" / "keep" / "Takeout"


@pytest.fixture
def takeout(tmp_path: Path) -> Path:
    shutil.copytree(TAKEOUT, tmp_path / "Takeout")
    return tmp_path / "Takeout"


def set_trashed(takeout: Path, name: str, trashed: bool) -> None:
    path = takeout / "Keep" / name
    note = json.loads(path.read_text())
    path.write_text(json.dumps({**note, "isTrashed": trashed}))


def test_a_trashed_note_is_a_deleted_record_with_its_content_in_history(vault: Vault, takeout: Path) -> None:
    """Issue 12: trashed notes came in as live notes with `trashed: true`."""
    s = import_file(vault, takeout, "keep")
    assert s.deleted == 1
    rid = derive_record_id(vault, Kind.NOTE, "keep", "file:Old idea.json")
    assert vault.projection.status(Kind.NOTE, rid) == "deleted"
    assert rid not in {r for r, _ in vault.projection.state(Kind.NOTE, vault.projection.seq)}
    created, deleted = vault.history(rid)
    assert created["data"]["body"] == "Sell the old bike" and created["data"]["trashed"] is True
    assert (created["event"], deleted["event"]) == ("created", "deleted")
    n = vault.log.head().seq
    again = import_file(vault, takeout, "keep")
    assert vault.log.head().seq == n and (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_restored_in_keep_it_comes_back_and_trashed_later_it_goes(vault: Vault, takeout: Path) -> None:
    import_file(vault, takeout, "keep")
    rid = derive_record_id(vault, Kind.NOTE, "keep", "file:Old idea.json")
    set_trashed(takeout, "Old idea.json", False)
    s = import_file(vault, takeout, "keep")
    assert s.created == 1 and vault.projection.status(Kind.NOTE, rid) == "live"
    assert "trashed" not in vault.get(rid)
    set_trashed(takeout, "Old idea.json", True)
    s = import_file(vault, takeout, "keep")
    assert s.deleted == 1 and vault.projection.status(Kind.NOTE, rid) == "deleted"
    assert vault.history(rid)[-2]["data"]["trashed"] is True  # the version Keep trashed is in history
