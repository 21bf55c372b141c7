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

import asyncio
import itertools
import re
import sqlite3
import weakref
from pathlib import Path
from typing import Any, Awaitable, Callable, Hashable, Iterator

import sqlcipher3.dbapi2 as sqlcipher
from datasette.database import Database, QueryInterrupted
from datasette.utils import sqlite_timelimit

from vault.domain.events import Kind
from vault.state.file import HMAC, PAGE_SIZE, READER_CACHE_MB, connect_reader, key_pragma
from vault.state.query import as_of_views
from vault.state.kept import Kept
from vault.state.search import MatchCache, Matches, matching_versions

_ERRORS = [(getattr(sqlcipher, n), getattr(sqlite3, n)) for n in (
    "IntegrityError", "ProgrammingError", "OperationalError", "NotSupportedError", "DataError", "InternalError",
    "DatabaseError", "InterfaceError", "Warning", "Error")]  # most specific first


def _translated(e: Exception) -> Exception:
    for theirs, ours in _ERRORS:
        if isinstance(e, theirs):
            return ours(*e.args)
    return e


_COUNT = re.compile(r"select count\(\*\) from ", re.IGNORECASE)  # Datasette's count of a list's rows
# How Datasette spells a table's name before checking the permission to view it.
_TABLE_NAMED = "select name from sqlite_master where type in ('table', 'view') and name = ? collate nocase"
# Datasette's facets (by column, date, or array items): counted over the whole list on every page of it.
_FACET = re.compile(r"\s*(with inner as \(|select .{1,300}? as value, count\(\*\) as count from \()", re.IGNORECASE | re.DOTALL)


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
    """The live views of the state file, read-only, through SQLCipher connections. `version()` names the
    state the readers see (the head seq): row counts are kept until it changes."""

    def __init__(self, ds: Any, path: Path, key: bytes, version: Callable[[], int] | None = None,
                 matches: MatchCache | None = None) -> None:
        super().__init__(ds, is_mutable=True, is_memory=True)
        self.state_path, self.key, self.version = path, key, version
        self._readers: list[Any] = []
        # Row and facet counts for the state they were counted in: Datasette counts a list's rows and facets on
        # every page (`select count(*) from messages`, 36 ms at 100,000 messages; the notes' tags facet 24 ms at
        # 18,000 versions), and a count cannot change until the state does. A count given a few ms that outran
        # them is kept too, as its QueryInterrupted.
        self._counts = Kept(64)
        self._pending: dict[Hashable, asyncio.Future] = {}
        self._matches = matches if matches is not None else MatchCache()  # a site's databases share one
        self._in_use: weakref.WeakValueDictionary[str, Matches] = weakref.WeakValueDictionary()
        self._tokens: weakref.WeakKeyDictionary[Matches, str] = weakref.WeakKeyDictionary()
        self._token_numbers = itertools.count(1)
        self._schema: dict[tuple[str, tuple], Any] = {}
        self._schema_version: int | None = None

    # Datasette reads the schema several times per page, a trip to a reader thread each (21 per list page):
    # what it reads is kept while the schema version stays the same.
    async def _remembered(self, name: str, *args: Any) -> Any:
        key = (name, args)
        if key not in self._schema:
            self._schema[key] = await getattr(super(), name)(*args)
        found = self._schema[key]
        return list(found) if isinstance(found, list) else found  # callers may extend what they get

    async def table_columns(self, table: str) -> Any:
        return await self._remembered("table_columns", table)

    async def table_column_details(self, table: str) -> Any:
        return await self._remembered("table_column_details", table)

    async def primary_keys(self, table: str) -> Any:
        return await self._remembered("primary_keys", table)

    async def fts_table(self, table: str) -> Any:
        return await self._remembered("fts_table", table)

    async def foreign_keys_for_table(self, table: str) -> Any:
        return await self._remembered("foreign_keys_for_table", table)

    async def get_view_definition(self, view: str) -> Any:
        return await self._remembered("get_view_definition", view)

    async def get_table_definition(self, table: str, type_: str = "table") -> Any:
        return await self._remembered("get_table_definition", table, type_)

    async def table_exists(self, table: str) -> Any:
        return await self._remembered("table_exists", table)

    async def get_all_foreign_keys(self) -> Any:
        """SQLite knows relations of tables only; Datasette's row page looks its table up here, so the record
        views are listed with none (a view's row page answered 500 with a KeyError)."""
        views = await self._remembered("view_names")
        return {**{view: {"incoming": [], "outgoing": []} for view in views},
                **await self._remembered("get_all_foreign_keys")}

    async def execute(self, sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql == "PRAGMA schema_version":  # Datasette asks before every page: the schema memo lasts until it moves
            found = await super().execute(sql, params, *args, **kwargs)
            if found.first()[0] != self._schema_version:
                self._schema_version, self._schema = found.first()[0], {}
            return found
        if sql == _TABLE_NAMED:  # Datasette's permission check, twice a page: a schema read like the others
            return await self._remembered("execute", sql, tuple(params or ()))
        facet = _FACET.match(sql) is not None and kwargs.get("custom_time_limit") is not None
        if self.version is None or not (_COUNT.match(sql) or facet):
            return await super().execute(sql, params, *args, **kwargs)
        limit = kwargs.get("custom_time_limit")
        key = (sql, tuple(sorted(params.items())) if isinstance(params, dict) else tuple(params or ()), limit,
               self.version())
        found = self._counts.get(key)
        if found is None:
            try:
                # Clients asking the same count at once (a list search, 0.3 s at 500,000 mails) share one counting.
                found = await self._shared(key, lambda: super(StateDatabase, self).execute(sql, params, *args, **kwargs))
            except QueryInterrupted as e:
                if limit is None:
                    raise
                # A count Datasette gives a few ms (a table's on the home and database pages, a facet) that outran
                # them: not tried again in this state. Counting a table is one uninterruptible step in SQLite,
                # the search index's data 345 ms at 500,000 mails, on every visit to the database page.
                found = e
            self._counts.put(key, found)  # under the version read before counting: a later state misses it
        if isinstance(found, QueryInterrupted):
            raise QueryInterrupted(found.e, found.sql, found.params)
        return found

    @property
    def size(self) -> int:
        """The state file's bytes (Datasette's own rule then skips counting every table of a large one on
        its home page, as for any large database file; a connection-made database would say 0)."""
        try:
            return self.state_path.stat().st_size
        except OSError:
            return 0

    async def _shared(self, key: Hashable, work: Callable[[], Awaitable[Any]]) -> Any:
        """`work()`'s answer, run once for every caller asking under `key` while it runs."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(work())
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def search_matches(self, kind: Kind, text: str, column: str | None, raw: bool) -> tuple[Matches, str]:
        """The versions of `kind` matching a list search, and the token `lv_matches` finds them by: evaluated
        once per state (`version()`), so paging through a search and counting it reuse one evaluation.
        Whoever runs SQL naming the token keeps the Matches referenced until it has run."""
        key = (self.name, kind.table, column, raw, text, self.version() if self.version else None)
        found = self._matches.get(key) if self.version else None
        if found is None:
            sql = f"list search of {kind.table} for {text!r}"  # what the "interrupted" page shows

            def evaluate(conn: Any) -> Matches:
                with sqlite_timelimit(conn, self.ds.sql_time_limit_ms):
                    try:
                        return matching_versions(conn, kind, text, column, raw)
                    except sqlite3.OperationalError as e:
                        if e.args == ("interrupted",):
                            raise QueryInterrupted(e, sql, {}) from e
                        raise

            found = await self._shared(key, lambda: self.execute_fn(evaluate))
            if self.version:
                self._matches.put(key, found)
        token = self._tokens.get(found)
        if token is None:
            token = self._tokens[found] = f"m{next(self._token_numbers)}"
            self._in_use[token] = found
        return found, token

    def matches_named(self, token: str) -> Matches:
        """The matches `search_matches` gave `token` (for `lv_matches`)."""
        found = self._in_use.get(token)
        if found is None:
            raise LookupError("These search results are no longer kept; load the page again.")
        return found

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

    def __init__(self, ds: Any, path: Path, key: bytes, seq: int, recorded_at: str | None,
                 matches: MatchCache | None = None) -> None:
        super().__init__(ds, path, key, version=lambda: seq, matches=matches)  # a past state never changes
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
