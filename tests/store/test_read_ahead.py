"""A long read of the log is decrypted by a child process: the same events, the same
checks, nothing but committed events, and this process reads whatever the child did not deliver."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from vault import Kind, Source, TamperDetected, Vault
from vault.store import read_ahead
from vault.store.log import EventLog

from conftest import PASSPHRASE

N = 4500  # more than one of the child's batches
SRC = Source("cli")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault of N events: creations, edits and deletions."""
    path = tmp_path_factory.mktemp("read-ahead") / "vault.db"
    v, _ = Vault.create(path, PASSPHRASE, kdf_cost="min")
    with v, v.transaction() as tx:
        ids = [tx.create(Kind.NOTE, {"title": f"note {i}", "tags": ["a", str(i)]}, SRC) for i in range(N - 1000)]
        for i in range(500):
            tx.update(ids[i], {"body": f"edit {i}", "tags": None}, SRC)
            tx.delete(ids[-1 - i], SRC)
    return path


@pytest.fixture
def vault_copy(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "vault.db"
    with closing(sqlite3.connect(built)) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    return copy


@pytest.fixture
def read_here_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """Every stretch this process read itself; the child is used from 100 events on."""
    monkeypatch.setattr(read_ahead, "READ_AHEAD_FROM", 100)
    calls: list[tuple[int, int | None]] = []
    original = EventLog.read_parts_here

    def recorded(self: EventLog, after: int = 0, upto: int | None = None):
        calls.append((after, upto))
        return original(self, after, upto)

    monkeypatch.setattr(EventLog, "read_parts_here", recorded)
    return calls


def test_the_child_delivers_the_same_events(built: Path, read_here_calls: list) -> None:
    with Vault.open(built, PASSPHRASE) as v:
        via_child = list(v.log.read(0, N))
        assert read_here_calls == []
        assert via_child == list(v.log.read_here(0, N))
        assert [r.seq for r in via_child] == list(range(1, N + 1))
        assert list(v.log.read(1000, 1200)) == via_child[1000:1200]


def test_a_replay_through_the_child_builds_the_same_projection(built: Path, read_here_calls: list) -> None:
    with Vault.open(built, PASSPHRASE) as v:
        through_child = v.replay_from_zero()
        assert read_here_calls == []
        read_here_calls.clear()
        read_ahead.READ_AHEAD_FROM = N + 1
        here = v.replay_from_zero()
        assert read_here_calls == [(0, N)]
        for table in ("notes_history", "notes"):
            query = f"SELECT * FROM {table} ORDER BY rowid"
            assert through_child.conn.execute(query).fetchall() == here.conn.execute(query).fetchall()


def test_tampering_is_named_through_the_child(vault_copy: Path, read_here_calls: list) -> None:
    with closing(sqlite3.connect(vault_copy, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        payload = bytearray(conn.execute("SELECT payload FROM events WHERE seq = 3000").fetchone()[0])
        payload[40] ^= 1
        conn.execute("UPDATE events SET payload = ? WHERE seq = 3000", (bytes(payload),))
    seen = []
    with Vault.open(vault_copy, PASSPHRASE) as v, pytest.raises(TamperDetected) as e:
        for r in v.log.read(0, N):
            seen.append(r.seq)
    assert e.value.seq == 3000
    assert seen == list(range(1, 3000)) and read_here_calls == []


def test_events_of_a_transaction_still_open_are_read_here(vault_copy: Path, read_here_calls: list) -> None:
    """The child reads up to the last committed event; no other process can see the rest."""
    with Vault.open(vault_copy, PASSPHRASE) as v, v.transaction() as tx:
        tx.create(Kind.NOTE, {"title": "uncommitted"}, SRC)
        read_here_calls.clear()
        events = list(v.log.read(N - 200, N + 1))
        assert [r.seq for r in events] == list(range(N - 199, N + 2))
        assert events[-1].event.changes == {"title": "uncommitted"}
    assert read_here_calls == [(N, N + 1)]


@pytest.mark.parametrize("child", ["cannot start", "exits at once", "dies midway"])
def test_what_the_child_did_not_deliver_is_read_here(built: Path, tmp_path: Path, read_here_calls: list,
                                                     monkeypatch: pytest.MonkeyPatch, child: str) -> None:
    if child == "cannot start":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    elif child == "exits at once":
        monkeypatch.setattr(sys, "executable", "/bin/false")
    else:  # the real child, its output cut off in the middle of its second batch
        wrapper = tmp_path / "python"
        wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | head -c 300000\n')
        wrapper.chmod(0o755)
        monkeypatch.setattr(sys, "executable", str(wrapper))
    with Vault.open(built, PASSPHRASE) as v:
        events = list(v.log.read(0, N))
        assert events == list(v.log.read_here(0, N))
    (after, upto), *_ = read_here_calls
    assert upto == N and (after > 0 if child == "dies midway" else after == 0)
