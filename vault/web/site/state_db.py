"""Datasette over the encrypted state file: its connections are SQLCipher ones, so nothing plaintext is written.

Datasette opens databases with the stdlib `sqlite3`; `StateDatabase.connect`
gives it sqlcipher3 connections instead, keyed and read-only, behind a thin
proxy that mends the two places where the libraries differ: Datasette sets
`row_factory = sqlite3.Row`, which refuses a sqlcipher3 cursor, and it catches
`sqlite3.OperationalError` / `DatabaseError` (its SQL time limit, bad SQL), so
sqlcipher3's errors are raised again as those, with the same arguments.

A past state (`AsOfDatabase`) is TEMP views over the history tables of the
attached state file: SQL evaluated at each query, nothing copied. Datasette
lists only `sqlite_master`, so that database lists its TEMP views itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlcipher3.dbapi2 as sqlcipher
from datasette.database import Database

from vault.state.query import as_of_views
from vault.state.file import HMAC, PAGE_SIZE, READER_CACHE_MB, connect_reader, key_pragma

_ERRORS = [(getattr(sqlcipher, n), getattr(sqlite3, n)) for n in (
    "IntegrityError", "ProgrammingError", "OperationalError", "NotSupportedError", "DataError", "InternalError",
    "DatabaseError", "InterfaceError", "Warning", "Error")]  # most specific first


def _translated(e: Exception) -> Exception:
    for theirs, ours in _ERRORS:
        if isinstance(e, theirs):
            return ours(*e.args)
    return e


class Row(tuple):
    """A row as Datasette wants it: a tuple (its JSON encoder) that also answers by column name and `keys()`."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


def _row_factory(cursor: Any, values: tuple) -> Row:
    row = Row(values)
    row.names = tuple(d[0] for d in cursor.description)
    return row


class _Cursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return self._call(iter, self._cursor)

    def _call(self, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except sqlcipher.Error as e:
            raise _translated(e) from e

    def execute(self, *args: Any) -> "_Cursor":
        self._call(self._cursor.execute, *args)
        return self

    def executemany(self, *args: Any) -> "_Cursor":
        self._call(self._cursor.executemany, *args)
        return self

    def fetchone(self) -> Any:
        return self._call(self._cursor.fetchone)

    def fetchmany(self, *args: Any) -> Any:
        return self._call(self._cursor.fetchmany, *args)

    def fetchall(self) -> Any:
        return self._call(self._cursor.fetchall)


class Connection:
    """A sqlcipher3 connection that looks like a stdlib one to Datasette."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @property
    def row_factory(self) -> Any:
        return self._conn.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._conn.row_factory = _row_factory if factory is sqlite3.Row else factory

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor())

    def execute(self, *args: Any) -> _Cursor:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> _Cursor:
        return self.cursor().executemany(*args)


class StateDatabase(Database):
    """The live views of the state file, read-only, through SQLCipher connections."""

    def __init__(self, ds: Any, path: Path, key: bytes) -> None:
        super().__init__(ds, is_mutable=True, is_memory=True)
        self.state_path, self.key = path, key
        self._readers: list[Any] = []

    def connect(self, write: bool = False) -> Any:
        if write:
            raise PermissionError("lifevault's browsing databases are read-only")
        conn = Connection(self._open())
        self._readers.append(conn)
        return conn

    def _open(self) -> Any:
        return connect_reader(self.state_path, self.key)

    def close(self) -> None:
        """Close every reader (Datasette keeps one per thread)."""
        for conn in self._readers:
            conn.close()
        self._readers.clear()


class AsOfDatabase(StateDatabase):
    """The vault as it stood after event `seq`: TEMP views over the attached state file's history."""

    def __init__(self, ds: Any, path: Path, key: bytes, seq: int, recorded_at: str | None) -> None:
        super().__init__(ds, path, key)
        self.seq, self._views = seq, as_of_views(seq, recorded_at)

    def _open(self) -> Any:
        conn = sqlcipher.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA cipher_log_level = NONE")
            conn.execute(f"PRAGMA cipher_default_page_size = {PAGE_SIZE}")  # what ATTACH reads the file with
            conn.execute(f"PRAGMA cipher_default_hmac_algorithm = {HMAC}")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute(f"ATTACH DATABASE ? AS state KEY {key_pragma(self.key)}", (str(self.state_path),))
            conn.execute(f"PRAGMA state.cache_size = -{READER_CACHE_MB * 1024}")
            for view in self._views:
                conn.execute(view)
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
        return conn

    async def table_names(self) -> list[str]:
        return []

    async def table_exists(self, table: str) -> bool:
        return False

    async def view_names(self) -> list[str]:
        return [r[0] for r in (await self.execute("SELECT name FROM sqlite_temp_master WHERE type = 'view'")).rows]

    async def get_table_definition(self, table: str, type_: str = "table") -> str | None:
        rows = (await self.execute("SELECT sql FROM sqlite_temp_master WHERE name = ? AND type = ?",
                                   [table, type_])).rows
        return rows[0][0] if rows else None

    async def hidden_table_names(self) -> list[str]:
        return []
