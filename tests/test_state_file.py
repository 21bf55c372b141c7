"""The projection in an encrypted state file beside the vault: the same state as in memory,
nothing readable on disk, reopened without replaying, and rebuilt whenever it does not match the log."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault import Kind, Source, Vault, state_file
from vault.cli import cli
from vault.log import EventLog

from conftest import PASSPHRASE

SRC = Source("cli")
SECRETS = [b"Lovelace", b"ada@example.org", b"Analytical Engine", b"the first program"]


def fill(v: Vault) -> dict[str, str]:
    """Records of every kind, edited and deleted: their ids by name."""
    ids = {"ada": v.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, SRC)}
    ids["note"] = v.add(Kind.NOTE, {"title": "Analytical Engine", "body": "the first program"}, SRC)
    ids["msg"] = v.add(Kind.MESSAGE, {"subject": "hello", "body": "x" * 5000}, SRC)
    v.update(ids["ada"], {"note": "mathematician"}, SRC)
    v.delete(ids["msg"], SRC)
    return ids


def states(v: Vault) -> dict:
    proj = v.projection
    proj.refresh_live()
    tables = ("contacts", "messages", "notes", "contacts_history", "messages_history", "notes_history")
    return {t: sorted(proj.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


@pytest.fixture
def filled(created: tuple[Path, str]) -> tuple[Path, dict[str, str]]:
    path = created[0]
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        v.projection  # the state file is made when the projection is first needed
        ids = fill(v)
    return path, ids


def test_same_state_as_in_memory_and_reopened_without_replaying(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = filled
    assert state_file.path_for(path).exists()
    with Vault.open(path, PASSPHRASE) as in_memory:
        expected = states(in_memory)
    reads, original = [], EventLog.read_here
    monkeypatch.setattr(EventLog, "read_here", lambda log, a=0, u=None: reads.append((a, u)) or original(log, a, u))
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        assert v.projection.in_file
        assert reads == [(4, 5)]  # the last event alone, decrypted to check the file matches the log
        assert states(v) == expected
        assert v.get(ids["ada"])["note"] == "mathematician"


def test_state_file_holds_no_plaintext(filled) -> None:
    path, _ = filled
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".state")]
    raw = b"".join(p.read_bytes() for p in files)
    assert len(raw) > 10_000
    for secret in SECRETS + [b"created", b"contacts_history", b"SQLite format"]:
        assert secret not in raw, secret


def test_state_file_of_another_vault_is_replaced(filled, tmp_path: Path) -> None:
    path, ids = filled
    other, _ = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min", state_file=True)
    with other:
        other.add(Kind.NOTE, {"title": "not yours"}, SRC)
        other.projection
    shutil.copy(state_file.path_for(other.path), state_file.path_for(path))
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        assert v.projection.in_file and v.projection.seq == 5
        assert v.get(ids["note"])["title"] == "Analytical Engine"


@pytest.mark.parametrize("how", ["vault restored from an older copy", "same seq, another event"])
def test_state_file_that_does_not_match_the_log_is_rebuilt(created: tuple[Path, str], tmp_path: Path, how: str) -> None:
    """A state file ahead of its vault (a crash between the two commits, a vault restored from a
    backup) or beside it (a different event at its seq) is rebuilt, never trusted."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        ada = v.add(Kind.CONTACT, {"name": "Ada"}, SRC)
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        v.update(ada, {"name": "Ada Lovelace"}, SRC)
        v.projection
    shutil.copy(backup, path)  # the vault goes back to seq 1; its state file stays at seq 2
    if how == "same seq, another event":
        with Vault.open(path, PASSPHRASE) as v:
            v.update(ada, {"name": "Ada King"}, SRC)
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        assert v.projection.in_file
        assert v.get(ada)["name"] == ("Ada" if how.startswith("vault") else "Ada King")
        assert len(v.history(ada)) == v.log.head().seq


def test_another_process_holding_the_state_file_means_memory(filled) -> None:
    path, ids = filled
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vault import Vault; "
         f"v = Vault.open(sys.argv[1], {PASSPHRASE!r}, state_file=True); v.projection; print('held', flush=True); "
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with Vault.open(path, PASSPHRASE, state_file=True) as v:
            assert not v.projection.in_file  # in memory
            assert v.get(ids["ada"])["name"] == "Ada Lovelace"
    finally:
        holder.communicate("")
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        assert v.projection.in_file  # released at close


def test_cli_deletes_a_state_file_found_damaged_mid_command(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage the opening check does not reach (here the live contacts table) surfaces mid-command:
    one sentence, the file deleted, and the next command rebuilds it."""
    path, ids = filled
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        roots = v.projection.conn.execute("SELECT rootpage FROM sqlite_schema WHERE tbl_name = 'contacts'").fetchall()
    state = state_file.path_for(path)
    data = bytearray(state.read_bytes())
    for (root,) in roots:  # the table and its index
        data[(root - 1) * 16384 + 100] ^= 1
    state.write_bytes(bytes(data))
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_STATE", "file")
    r = CliRunner().invoke(cli, ["stats", "--json", "--vault", str(path)])
    assert r.exit_code == 1 and r.exception is not None and "Traceback" not in r.output, r.output
    assert f"Error: The state file {state} did not read back" in r.output and "rebuild it from the log" in r.output
    assert not state.exists()
    r = CliRunner().invoke(cli, ["stats", "--json", "--vault", str(path)])
    assert r.exit_code == 0 and '"contacts": 1' in r.output, r.output
    assert state.exists()


def test_where_no_state_file_can_be_made_the_state_is_in_memory(filled) -> None:
    path, ids = filled
    state = state_file.path_for(path)
    state_file.remove(state)
    state.mkdir()  # something in the way that is not a database and cannot be deleted as a file
    with Vault.open(path, PASSPHRASE, state_file=True) as v:
        assert not v.projection.in_file
        assert v.get(ids["ada"])["name"] == "Ada Lovelace"
    assert state.is_dir()


def test_cli_refuses_an_unknown_state_setting(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = filled
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("LIFEVAULT_STATE", "disk")
    r = CliRunner().invoke(cli, ["show", ids["ada"], "--vault", str(path)])
    assert r.exit_code == 1 and "LIFEVAULT_STATE must be memory or file, not 'disk'." in r.output


def test_serving_refuses_a_vault_with_its_state_in_a_file(filled) -> None:
    from vault.errors import VaultError
    from vault.web import LiveVault

    with Vault.open(filled[0], PASSPHRASE, state_file=True) as v, pytest.raises(VaultError, match="in memory"):
        LiveVault(v)
