"""A served vault after a commit that fails for real (issue 14: the recovery path once raised a NameError).

The failure is SQLite's own: a temporary trigger on the connection adds a row that breaks a deferred
foreign key, so the COMMIT itself is refused ("FOREIGN KEY constraint failed"), as a full disk refuses
one. Nothing in the file is touched to arrange it (temporary objects live on the connection only).

- The log's commit fails: one sentence (CannotWrite), nothing stored, readers and `on_change` see no
  change, and the next write goes through.
- The state file's commit fails after the log's succeeded: the write is stored, so it is reported as done;
  the state file is reopened and caught up on the spot, readers see the record and `on_change` hears of it.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from vault import CannotWrite, Kind, Source, Vault
from vault.web.site.live import LiveVault

SRC = Source("cli")


@contextmanager
def commits_refused(conn: Any, table: str) -> Iterator[None]:
    """Every COMMIT on `conn` of a transaction that inserted into `table` fails, until the block ends."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TEMP TABLE lv_parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE lv_child (parent INTEGER REFERENCES lv_parent (id) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute(f"CREATE TEMP TRIGGER lv_refuse AFTER INSERT ON main.{table} "
                 "BEGIN INSERT INTO lv_child (parent) VALUES (1); END")
    try:
        yield
    finally:
        for statement in ("DROP TRIGGER IF EXISTS temp.lv_refuse", "DROP TABLE IF EXISTS temp.lv_child",
                          "DROP TABLE IF EXISTS temp.lv_parent"):
            try:
                conn.execute(statement)
            except Exception:  # the connection was closed on the way (the state file is reopened)
                break


def _names(live: LiveVault) -> list[str]:
    reader = live.reader()
    try:
        return [name for (name,) in reader.execute(f"SELECT name FROM {Kind.CONTACT.table} ORDER BY name")]
    finally:
        reader.close()


@pytest.fixture
def live(vault: Vault) -> Iterator[tuple[LiveVault, list[int]]]:
    vault.add(Kind.CONTACT, {"name": "Ada"}, SRC)
    served = LiveVault(vault)
    heard: list[int] = []
    served.on_change.append(heard.append)
    yield served, heard


def test_a_refused_log_commit_stores_nothing_and_serving_goes_on(live: tuple[LiveVault, list[int]]) -> None:
    served, heard = live
    vault = served.vault
    with commits_refused(vault.conn, "events"):
        with pytest.raises(CannotWrite) as e:
            served.write(lambda v: v.add(Kind.CONTACT, {"name": "Grace"}, SRC))
        assert str(e.value).startswith(f"Cannot write {vault.path}: SQLite refused to commit")
        assert "\n" not in str(e.value)
        assert vault.log.head().seq == 1 and served.seq == 1
        assert heard == [] and _names(served) == ["Ada"]
    served.write(lambda v: v.add(Kind.CONTACT, {"name": "Grace"}, SRC))
    assert vault.log.head().seq == 2 and heard == [2] and _names(served) == ["Ada", "Grace"]


def test_a_refused_state_commit_after_the_log_committed_is_caught_up(live: tuple[LiveVault, list[int]],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    served, heard = live
    vault = served.vault
    state = vault.projection.conn
    with commits_refused(state, f"{Kind.CONTACT.table}_history"):
        rid = served.write(lambda v: v.add(Kind.CONTACT, {"name": "Grace"}, SRC))  # stored: not an error
        assert vault.log.head().seq == 2
        assert vault.projection.conn is not state  # reopened, without the trap, and caught up
    assert f"the state file {vault.state_path} did not take write 2" in caplog.text
    assert served.seq == 2 and heard == [2]
    assert _names(served) == ["Ada", "Grace"] and vault.get(rid)["name"] == "Grace"
    served.write(lambda v: v.add(Kind.CONTACT, {"name": "Hedy"}, SRC))
    assert heard == [2, 3] and _names(served) == ["Ada", "Grace", "Hedy"]


def test_the_trap_is_real_sqlite(tmp_path) -> None:
    """The refusal comes from SQLite at COMMIT, not from anything this suite raises."""
    conn = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    with commits_refused(conn, "t"):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
            conn.execute("COMMIT")
        conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    conn.close()
