"""The decrypted state's one home, the encrypted state file beside the vault: the same state a replay
gives, nothing readable on disk, reopened without replaying, shared by processes, and rebuilt (with one
sentence) whenever it is another vault's, older, torn or damaged."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from vault import Kind, Source, Vault
from vault.state import file as state_file
from vault.cli import cli
from vault.errors import CannotWrite
from vault.store.log import EventLog

from conftest import PASSPHRASE

SRC = Source("cli")
SECRETS = [b"Lovelace", b"ada@example.org", b"Analytical Engine", b"the first program"]
TABLES = ("contacts", "messages", "notes", "contacts_history", "messages_history", "notes_history")


def fill(v: Vault) -> dict[str, str]:
    """Records of every kind, edited and deleted: their ids by name."""
    ids = {"ada": v.add(Kind.CONTACT, {"name": "Ada Lovelace", "emails": ["ada@example.org"]}, SRC)}
    ids["note"] = v.add(Kind.NOTE, {"title": "Analytical Engine", "body": "the first program"}, SRC)
    ids["msg"] = v.add(Kind.MESSAGE, {"subject": "hello", "body": "x" * 5000}, SRC)
    v.update(ids["ada"], {"note": "mathematician"}, SRC)
    v.delete(ids["msg"], SRC)
    return ids


def tables(conn) -> dict:
    return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


@pytest.fixture
def filled(created: tuple[Path, str]) -> tuple[Path, dict[str, str]]:
    with Vault.open(created[0], PASSPHRASE) as v:
        ids = fill(v)
    return created[0], ids


def told(v: Vault) -> list[str]:
    sentences: list[str] = []
    v.notify = sentences.append
    return sentences


def test_same_state_as_a_replay_and_reopened_without_replaying(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    path, ids = filled
    assert state_file.path_for(path).exists()
    reads, original = [], EventLog.read_parts_here
    monkeypatch.setattr(EventLog, "read_parts_here", lambda log, a=0, u=None: reads.append((a, u)) or original(log, a, u))
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert tables(v.projection.conn) == tables(v.replay_from_zero().conn)
        assert reads[0] == (4, 5)  # the last event alone, decrypted to check the file matches the log
        assert v.get(ids["ada"])["note"] == "mathematician"
        assert sentences == []


def test_state_file_and_its_wal_hold_no_plaintext(filled) -> None:
    path, _ = filled
    with Vault.open(path, PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "Lovelace again"}, SRC)  # left in the WAL while the file is open
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".state")]
        assert any(p.name.endswith("-wal") for p in files)
        raw = b"".join(p.read_bytes() for p in files)
    assert len(raw) > 10_000
    for secret in SECRETS + [b"created", b"contacts_history", b"SQLite format"]:
        assert secret not in raw, secret


def test_state_file_of_another_vault_is_rebuilt_with_one_sentence(filled, tmp_path: Path) -> None:
    path, ids = filled
    other, _ = Vault.create(tmp_path / "other.db", PASSPHRASE, kdf_cost="min")
    with other:
        other.add(Kind.NOTE, {"title": "not yours"}, SRC)
    shutil.copy(state_file.path_for(other.path), state_file.path_for(path))
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert v.projection.seq == 5
        assert v.get(ids["note"])["title"] == "Analytical Engine"
    assert sentences == [f"The state file {state_file.path_for(path)} could not be read (file is not a database); "
                         "it is rebuilt from the log."]


@pytest.mark.parametrize("how", ["vault restored from an older copy", "same seq, another event"])
def test_state_file_that_does_not_match_the_log_is_rebuilt(created: tuple[Path, str], tmp_path: Path, how: str) -> None:
    """A state file ahead of its vault (a vault restored from a backup) or beside it (a different event at
    its seq) is rebuilt, never trusted."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        ada = v.add(Kind.CONTACT, {"name": "Ada"}, SRC)
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    with Vault.open(path, PASSPHRASE) as v:
        v.update(ada, {"name": "Ada Lovelace"}, SRC)
    shutil.copy(backup, path)  # the vault goes back to seq 1; its state file stays at seq 2
    state = state_file.path_for(path)
    if how == "same seq, another event":
        kept = tmp_path / "state"
        shutil.copy(state, kept)
        with Vault.open(path, PASSPHRASE) as v:
            v.update(ada, {"name": "Ada King"}, SRC)
        state_file.remove(state)
        shutil.copy(kept, state)
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert v.get(ada)["name"] == ("Ada" if how.startswith("vault") else "Ada King")
        assert len(v.history(ada)) == v.log.head().seq
    assert sentences == [f"The state file {state} does not match the vault's log (an older copy, or another "
                         "vault's); it is rebuilt from the log."]


def test_an_older_copy_of_the_state_file_is_caught_up(filled, tmp_path: Path) -> None:
    path, ids = filled
    state = state_file.path_for(path)
    shutil.copy(state, tmp_path / "older")
    with Vault.open(path, PASSPHRASE) as v:
        v.update(ids["ada"], {"name": "Ada King"}, SRC)
    state_file.remove(state)
    shutil.copy(tmp_path / "older", state)
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert v.get(ids["ada"])["name"] == "Ada King" and v.projection.seq == 6
        assert tables(v.projection.conn) == tables(v.replay_from_zero().conn)
    assert sentences == []  # a prefix of the log: only the events it lacks are applied


def test_a_state_file_torn_by_kill_9_mid_rebuild_is_consistent(filled) -> None:
    path, _ = filled
    with Vault.open(path, PASSPHRASE) as v:
        with v.transaction() as tx:
            for i in range(20_000):
                tx.create(Kind.NOTE, {"title": f"note {i}", "body": "w " * 50}, SRC)
        expected = tables(v.replay_from_zero().conn)
    state = state_file.path_for(path)
    state_file.remove(state)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from vault import Vault; "
                              f"v = Vault.open(sys.argv[1], {PASSPHRASE!r}); v.projection", str(path)],
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 60
    while not Path(f"{state}-wal").exists() or Path(f"{state}-wal").stat().st_size < 1 << 20:
        assert child.poll() is None and time.monotonic() < deadline, "the rebuild ended before it could be killed"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Vault.open(path, PASSPHRASE) as v:
        assert tables(v.projection.conn) == expected


def test_a_damaged_state_file_is_rebuilt_with_one_sentence(filled) -> None:
    path, ids = filled
    state = state_file.path_for(path)
    data = bytearray(state.read_bytes())
    data[100] ^= 1  # the first page: its HMAC fails, so the file does not open
    state.write_bytes(bytes(data))
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert v.get(ids["ada"])["name"] == "Ada Lovelace"
    assert len(sentences) == 1 and sentences[0].startswith(f"The state file {state} could not be read (")


def test_cli_deletes_a_state_file_found_damaged_mid_command(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage the opening check does not reach (here the contacts' history) surfaces mid-command:
    one sentence, the file deleted, and the next command rebuilds it."""
    path, ids = filled
    with Vault.open(path, PASSPHRASE) as v:
        roots = v.projection.conn.execute("SELECT rootpage FROM sqlite_schema WHERE tbl_name = 'contacts_history' AND rootpage > 0").fetchall()
        v.projection.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    state = state_file.path_for(path)
    data = bytearray(state.read_bytes())
    for (root,) in roots:  # the table and its index
        data[(root - 1) * 16384 + 100] ^= 1
    state.write_bytes(bytes(data))
    monkeypatch.setenv("LIFEVAULT_PASSPHRASE", PASSPHRASE)
    r = CliRunner().invoke(cli, ["stats", "--json", "--vault", str(path)])
    assert r.exit_code == 1 and r.exception is not None and "Traceback" not in r.output, r.output
    assert f"Error: The state file {state} did not read back" in r.output and "rebuild it from the log" in r.output
    assert not state.exists()
    r = CliRunner().invoke(cli, ["stats", "--json", "--vault", str(path)])
    assert r.exit_code == 0 and '"contacts": 1' in r.output, r.output
    assert state.exists()


def test_processes_share_the_state_file(filled) -> None:
    """A process holding the file open (as `serve` does) neither blocks another's reads nor its appends,
    and sees them."""
    path, ids = filled
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vault import Vault, Kind; "
         f"v = Vault.open(sys.argv[1], {PASSPHRASE!r}); v.projection; print('held', flush=True); "
         "sys.stdin.readline(); v.refresh(); print(v.projection.count(Kind.NOTE), flush=True); sys.stdin.read()",
         str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        with Vault.open(path, PASSPHRASE) as v:
            assert v.get(ids["ada"])["name"] == "Ada Lovelace"
            v.add(Kind.NOTE, {"title": "second"}, SRC)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "2"
    finally:
        holder.communicate("")
    assert holder.returncode == 0


def test_where_no_state_file_can_be_made_one_sentence_says_so(filled) -> None:
    path, ids = filled
    state = state_file.path_for(path)
    state_file.remove(state)
    state.mkdir()  # something in the way that is not a database and cannot be deleted as a file
    with Vault.open(path, PASSPHRASE) as v, pytest.raises(CannotWrite, match=f"Cannot write {state}: "):
        _ = v.projection
    assert state.is_dir()


def test_a_long_rebuild_says_how_far_it_is(filled, monkeypatch: pytest.MonkeyPatch) -> None:
    from vault import vault as vault_module

    path, _ = filled
    monkeypatch.setattr(vault_module, "PROGRESS_FROM", 2)
    monkeypatch.setattr(vault_module, "PROGRESS_EVERY_S", 0)  # every event: a slow machine, in effect
    state_file.remove(state_file.path_for(path))
    with Vault.open(path, PASSPHRASE) as v:
        sentences = told(v)
        assert v.projection.seq == 5
    assert sentences == [f"Building the state file {state_file.path_for(path)} from 5 events…",
                         *(f"… {n} of 5 events" for n in range(1, 6)), "… building the search indexes"]
