"""Appends check the record index, not the projection: writing to a vault never has to load every version.

The index is cached in the vault like the projection; which path opening took is observed by counting the
events decrypted and by whether the projection was loaded at all.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from vault import Kind, Source, Vault
from vault.errors import InvalidRecord, NotFound
from vault.events import Event, EventType

from conftest import PASSPHRASE
from test_snapshots import FIRST, TAIL, add_events, decrypted, snapped  # noqa: F401  (fixtures)

SRC = Source("cli")


def test_adding_to_a_vault_leaves_the_projection_unloaded_and_replays_only_the_tail(snapped: Path,
                                                                                    decrypted: list[int]) -> None:
    decrypted.clear()
    with Vault.open(snapped, PASSPHRASE) as v:
        rid = v.add(Kind.NOTE, {"title": "quick"}, SRC)
        assert v._projection is None
        assert sorted(set(decrypted)) == list(range(FIRST + 1, FIRST + TAIL + 1))  # the index came from its snapshot
        assert v.get(rid) == {"title": "quick"}  # reading loads the projection, which sees the append


def test_the_index_refuses_what_the_projection_would(snapped: Path) -> None:
    with Vault.open(snapped, PASSPHRASE) as v:
        live = v.add(Kind.CONTACT, {"name": "Ada"}, SRC)
        gone = v.add(Kind.CONTACT, {"name": "Bob"}, SRC)
        v.delete(gone, SRC)
        with pytest.raises(InvalidRecord, match="already exists"), v.transaction() as tx:
            tx.append([Event(EventType.CREATED, Kind.CONTACT, live, {"name": "x"}, SRC)])
    with Vault.open(snapped, PASSPHRASE) as v:
        head = v.log.head().seq
        with pytest.raises(InvalidRecord, match="is deleted"):
            v.delete(gone, SRC)
        with pytest.raises(NotFound):
            v.delete("c_nosuchrecord", SRC)
        assert v._projection is None and v.log.head().seq == head


def test_a_projection_loaded_inside_a_transaction_sees_its_earlier_appends(created: tuple[Path, str]) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        with v.transaction() as tx:
            rid = tx.create(Kind.NOTE, {"title": "one"}, SRC)
            assert v._projection is None
            tx.update(rid, {"title": "two"}, SRC)  # needs the record's fields: loads the projection mid-way
        assert v.get(rid) == {"title": "two"} and v.projection.seq == v.log.head().seq == 2


def test_a_failed_transaction_leaves_no_state_ahead_of_the_log(created: tuple[Path, str]) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "kept"}, SRC)
        with pytest.raises(RuntimeError):
            with v.transaction() as tx:
                tx.create(Kind.NOTE, {"title": "lost"}, SRC)
                raise RuntimeError("interrupted")
        assert v.log.head().seq == 1
        assert [f["title"] for _, f in v.projection.state(Kind.NOTE)] == ["kept"]
        assert v.index.seq == 1


def test_a_damaged_index_snapshot_is_ignored(snapped: Path, decrypted: list[int]) -> None:
    with closing(sqlite3.connect(snapped)) as conn:
        assert conn.execute("SELECT count(*) FROM index_snapshots").fetchone()[0] >= 1
        conn.execute("UPDATE index_snapshots SET payload = substr(payload, 1, length(payload) - 1)")
        conn.commit()
    decrypted.clear()
    with Vault.open(snapped, PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "after"}, SRC)
        assert sorted(set(decrypted)) == list(range(1, FIRST + TAIL + 1))  # rebuilt from the log
        assert v.index.seq == v.projection.seq == FIRST + TAIL + 1
        assert v.replay_from_zero().statuses(Kind.NOTE, [r for r, _ in v.projection.state(Kind.NOTE)]) == \
            v.index.statuses(Kind.NOTE, [r for r, _ in v.projection.state(Kind.NOTE)])


def test_without_a_recent_index_snapshot_the_index_comes_from_the_projection_snapshot(
        snapped: Path, decrypted: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    import vault.vault as vault_mod

    monkeypatch.setattr(vault_mod, "SNAPSHOT_MIN_EVENTS", 10)  # "much older" at this small scale
    with closing(sqlite3.connect(snapped)) as conn:
        conn.execute("DELETE FROM index_snapshots")  # as in a vault written before the index existed
        conn.commit()
    decrypted.clear()
    with Vault.open(snapped, PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "first add"}, SRC)
        assert v._projection is not None  # loaded rather than replaying the whole log for the index
        assert sorted(set(decrypted)) == list(range(FIRST + 1, FIRST + TAIL + 1))
    with closing(sqlite3.connect(snapped)) as conn:  # cached at close, so the next add needs only the index
        assert conn.execute("SELECT max(seq) FROM index_snapshots").fetchone()[0] == FIRST + TAIL + 1
    with Vault.open(snapped, PASSPHRASE) as v:
        v.add(Kind.NOTE, {"title": "second add"}, SRC)
        assert v._projection is None
