"""Snapshots are a cache: reopening from one gives the same state as replay from zero,
and a damaged, moved, foreign or incomplete snapshot is ignored (replay falls back) with the state still right.

Which path opening took is observed by counting the events it decrypted.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import vault.snapshots as snapshots_mod
import vault.vault as vault_mod
from vault import Kind, Source, Vault
from vault.events import kind_of
from vault.instants import Instant
from vault.log import EventLog
from vault.projection import Projection

from conftest import PASSPHRASE

SRC = Source("cli")
FIRST, TAIL = 40, 7  # events before the snapshot, events after it


def table_contents(proj: Projection) -> dict[str, list[tuple]]:
    proj.refresh_live()  # live tables are materialized on demand; compare them materialized
    names = [r[0] for r in proj.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {n: sorted(proj.conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def add_events(v: Vault, n: int, tag: str) -> None:
    """Exactly n more events: creates, edits, deletions and revivals across all kinds (each step adds at most one)."""
    target, made, i = v.log.head().seq + n, [], 0
    while v.log.head().seq < target:
        if i % 4 == 0 or len(made) < 3:
            made.append(v.add(list(Kind)[i % 3], {"title": f"{tag}-{i}", "body": "x" * (i % 5), "tags": [tag, i]}, SRC))
        elif i % 4 == 1:
            live = [r for r in made if v.projection.status(kind_of(r), r) == "live"]
            v.update(live[-1], {"body": None, "seen": i}, SRC)
        elif i % 4 == 2:
            live = [r for r in made if v.projection.status(kind_of(r), r) == "live"]
            v.delete(live[0], SRC)
        else:
            v.revert(made[i % len(made)], Instant(seq=max(0, v.log.head().seq - 3)), SRC)  # may add nothing
        i += 1
    assert v.log.head().seq == target


@pytest.fixture
def snapped(created: tuple[Path, str]) -> Path:
    """A vault with a snapshot after FIRST events and TAIL more events after it."""
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_events(v, FIRST, "a")
        v.snapshot()
        add_events(v, TAIL, "b")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT DISTINCT seq FROM snapshots").fetchall() == [(FIRST,)]
    return path


@pytest.fixture
def decrypted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs every EventLog decrypts from now on (the real method still runs)."""
    seen: list[int] = []
    real = EventLog.decrypt

    def counting(self: EventLog, seq: int, prev: bytes, payload: bytes) -> Any:
        seen.append(seq)
        return real(self, seq, prev, payload)

    monkeypatch.setattr(EventLog, "decrypt", counting)
    return seen


def reopen_and_check(path: Path, decrypted: list[int]) -> list[int]:
    """Open, compare with two replays from zero; returns the seqs the open itself decrypted."""
    decrypted.clear()
    with Vault.open(path, PASSPHRASE) as v:
        assert v.projection.seq == FIRST + TAIL  # loaded on first use
        replayed_on_open = list(decrypted)
        from_zero = v.replay_from_zero()
        assert table_contents(v.projection) == table_contents(from_zero)
        assert table_contents(v.replay_from_zero()) == table_contents(from_zero)
    return replayed_on_open


def test_reopen_with_snapshot_equals_replay_from_zero(snapped: Path, decrypted: list[int]) -> None:
    assert reopen_and_check(snapped, decrypted) == list(range(FIRST + 1, FIRST + TAIL + 1))


def test_without_any_snapshot_replays_everything(snapped: Path, decrypted: list[int]) -> None:
    with closing(sqlite3.connect(snapped)) as conn:
        conn.execute("DELETE FROM snapshots")
        conn.commit()
    assert reopen_and_check(snapped, decrypted) == list(range(1, FIRST + TAIL + 1))


def corrupt(path: Path, sql: str, *params: Any) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(sql, params)
        conn.commit()


def flipped(path: Path, at: int) -> bytes:
    with closing(sqlite3.connect(path)) as conn:
        payload = bytearray(conn.execute("SELECT payload FROM snapshots").fetchone()[0])
    payload[at % len(payload)] ^= 0x80
    return bytes(payload)


@pytest.mark.parametrize("damage", [
    "flip-first", "flip-middle", "flip-last", "truncated", "short", "empty", "text", "moved-to-other-seq", "part-renumbered",
])
def test_damaged_snapshot_is_ignored(snapped: Path, decrypted: list[int], damage: str) -> None:
    if damage.startswith("flip"):
        at = {"flip-first": 0, "flip-middle": 200, "flip-last": -1}[damage]
        corrupt(snapped, "UPDATE snapshots SET payload = ?", flipped(snapped, at))
    elif damage == "truncated":
        corrupt(snapped, "UPDATE snapshots SET payload = substr(payload, 1, length(payload) - 10)")
    elif damage == "short":
        corrupt(snapped, "UPDATE snapshots SET payload = x'0102030405'")
    elif damage == "empty":
        corrupt(snapped, "UPDATE snapshots SET payload = x''")
    elif damage == "text":
        corrupt(snapped, "UPDATE snapshots SET payload = 'a snapshot, honestly'")
    elif damage == "moved-to-other-seq":
        corrupt(snapped, "UPDATE snapshots SET seq = ?", FIRST - 5)
    elif damage == "part-renumbered":
        corrupt(snapped, "UPDATE snapshots SET part = 1")
    assert reopen_and_check(snapped, decrypted) == list(range(1, FIRST + TAIL + 1))


def test_snapshot_from_another_vault_is_ignored(snapped: Path, tmp_path: Path, decrypted: list[int]) -> None:
    other = tmp_path / "other.db"
    with Vault.create(other, PASSPHRASE, kdf_cost="min")[0] as v:
        add_events(v, FIRST, "a")
        v.snapshot()
    with closing(sqlite3.connect(other)) as conn:
        theirs = conn.execute("SELECT seq, part, payload FROM snapshots").fetchall()
    corrupt(snapped, "DELETE FROM snapshots")
    for row in theirs:
        corrupt(snapped, "INSERT INTO snapshots (seq, part, payload) VALUES (?, ?, ?)", *row)
    assert reopen_and_check(snapped, decrypted) == list(range(1, FIRST + TAIL + 1))


def test_newest_damaged_falls_back_to_older_snapshot(snapped: Path, decrypted: list[int]) -> None:
    with Vault.open(snapped, PASSPHRASE) as v:
        v.snapshot()  # a second snapshot, at FIRST + TAIL
    corrupt(snapped, "UPDATE snapshots SET payload = substr(payload, 1, 40) WHERE seq = ?", FIRST + TAIL)
    assert reopen_and_check(snapped, decrypted) == list(range(FIRST + 1, FIRST + TAIL + 1))


def test_multi_part_snapshot_with_a_part_missing_is_ignored(created: tuple[Path, str], decrypted: list[int],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots_mod, "PART_BYTES", 4096)
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_events(v, FIRST, "a")
        v.snapshot()
        add_events(v, TAIL, "b")
    with closing(sqlite3.connect(path)) as conn:
        parts = [r[0] for r in conn.execute("SELECT part FROM snapshots ORDER BY part")]
    assert len(parts) >= 3
    assert reopen_and_check(path, decrypted) == list(range(FIRST + 1, FIRST + TAIL + 1))  # intact: used

    corrupt(path, "DELETE FROM snapshots WHERE part = ?", parts[-1])  # the last part gone
    assert reopen_and_check(path, decrypted) == list(range(1, FIRST + TAIL + 1))


def test_close_writes_a_snapshot_when_enough_is_new(created: tuple[Path, str], decrypted: list[int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_mod, "SNAPSHOT_MIN_EVENTS", 20)
    path = created[0]
    with Vault.open(path, PASSPHRASE) as v:
        add_events(v, 19, "a")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    with Vault.open(path, PASSPHRASE) as v:
        add_events(v, FIRST + TAIL - 19, "b")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT DISTINCT seq FROM snapshots").fetchall() == [(FIRST + TAIL,)]
    assert reopen_and_check(path, decrypted) == []


def test_live_tables_stay_right_when_a_transaction_that_refreshed_them_rolls_back(created: tuple[Path, str]) -> None:
    with Vault.open(created[0], PASSPHRASE) as v:
        rid = v.add(Kind.NOTE, {"title": "before"}, SRC)
        v.update(rid, {"title": "committed"}, SRC)  # the live row is now stale (rebuilt on first use)
        with pytest.raises(RuntimeError):
            with v.transaction() as tx:
                tx.create(Kind.NOTE, {"title": "rolled back"}, SRC)
                assert v.projection.count(Kind.NOTE) == 2  # refreshes the live tables inside the transaction
                raise RuntimeError("interrupted")
        assert v.projection.count(Kind.NOTE) == 1
        assert v.projection.conn.execute("SELECT id, title FROM notes").fetchall() == [(rid, "committed")]


def test_an_unusable_snapshot_is_replaced_at_close(snapped: Path, decrypted: list[int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_mod, "SNAPSHOT_MIN_EVENTS", 10)
    corrupt(snapped, "UPDATE snapshots SET payload = ?", flipped(snapped, 100))
    with Vault.open(snapped, PASSPHRASE) as v:
        v.projection  # replayed from event 1: the damaged snapshot at FIRST must not count as a cache
    decrypted.clear()
    with Vault.open(snapped, PASSPHRASE) as v:
        assert v.projection.seq == FIRST + TAIL
    assert decrypted == []  # the snapshot written at close covers everything
