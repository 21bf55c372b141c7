"""The projection's in-memory home: a named memdb is read and filled a piece at a time, through
SQLite's own file object or, where that is out of reach, through the plain sqlite3 API."""

from __future__ import annotations

import sqlite3

import pytest

from vault import memdb

PIECE = 4096 * 3  # several pages per piece, and a last piece shorter than the others


@pytest.fixture(params=["c-api", "plain-api"])
def api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "plain-api":  # a platform where Python's SQLite library cannot be reached by ctypes
        monkeypatch.setattr(memdb, "_lib", lambda: None)
    return request.param


def filled(rows: int) -> tuple[str, sqlite3.Connection]:
    name = memdb.new_name("test")
    conn = memdb.connect(name)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO t (body) VALUES (?)", ((f"row {i} " * 20,) for i in range(rows)))
    return name, conn


def test_pieces_then_load_give_the_same_database(api: str) -> None:
    name, conn = filled(500)
    parts = list(memdb.pieces(conn, name, PIECE))
    assert b"".join(parts) == conn.serialize()
    assert len(parts) > 2 and all(len(p) == PIECE for p in parts[:-1])
    copy = memdb.load(memdb.new_name("copy"), iter(parts))
    assert copy.execute("SELECT * FROM t ORDER BY id").fetchall() == conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    copy.execute("INSERT INTO t (body) VALUES ('more')")  # the loaded copy is writable and independent
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 500


def test_loading_bytes_that_are_not_a_database_fails_and_keeps_nothing(api: str) -> None:
    name = memdb.new_name("bad")
    with pytest.raises(sqlite3.DatabaseError):
        memdb.load(name, iter([b"not a database" * 1000]))
    fresh = memdb.connect(name)  # the name is free again: a new, empty database
    assert fresh.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0


def test_writable_connections_lift_the_one_gib_cap() -> None:
    name, conn = filled(1)
    assert memdb.size_limit(name) == memdb.MAX_BYTES


def test_a_state_that_outgrows_its_memdb_is_refused_in_one_sentence_with_nothing_written(vault) -> None:
    from vault import Kind, Source
    from vault.errors import StateTooLarge

    vault.add(Kind.NOTE, {"title": "kept"}, Source("cli"))
    head = vault.log.head().seq
    memdb.size_limit(vault.projection.name, 256 * 1024)  # what SQLite's 2 GiB ceiling does to a huge vault
    with pytest.raises(StateTooLarge, match="outgrown the 2 GiB"):
        with vault.transaction() as tx:
            for i in range(200):
                tx.create(Kind.NOTE, {"title": f"n{i}", "body": "x" * 4000}, Source("cli"))
    assert vault.log.head().seq == head
    assert [f["title"] for _, f in vault.projection.state(Kind.NOTE)] == ["kept"]
