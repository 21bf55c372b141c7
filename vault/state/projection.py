"""The projection: plain SQLite tables rebuilt by replaying events.

Per kind, a history table (`contacts_history`, …: one row per version with
seq_from/seq_to and valid_from/valid_to, the fields as JSON), an FTS5 index of
every version (`contacts_fts`, …, fed by a trigger) and a view of the live
records (`contacts`, `messages`, `notes`: the open versions, one column per
known field, unknown fields in `extra`). The live records are not copied: the
view reads the open versions through a partial index, so an append writes each
version once, and "as of" is the same SQL with another seq (`query.table_select`). The database is the vault's
encrypted state file (state_file.py), so plaintext never reaches disk except
through `restore` or an export; a private in-memory one serves tests and
reference replays.
"""

from __future__ import annotations

import sqlite3
import zlib
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from vault.errors import TamperDetected
from vault.store.codec import dumps, event_types, fields_json, loads, source_json
from vault.domain.events import EventType, Kind, Recorded, apply_patch
from vault.domain.instants import iso
from vault.state.imports import ImportQueries
from vault.state.query import StateQuery, table_select



def projection_version() -> int:
    """The tables' layout: the hand-kept number changes with how events fold (3: full-text indexes inside, live
    records a view of the open versions; 4: the lists' sort indexes; 5: replays keep the stored text of sources
    and changes, search indexes gather 8 MB before writing, HMAC-SHA256 pages; 6: the sort indexes say which
    versions are open, and the index of open versions holds what it is filtered by, so counting the live
    records reads it alone rather than the sort index); the checksum changes with the registered kinds (their
    tables, columns and full-text columns), so a state file made under other kinds is rebuilt rather than
    misread."""
    layout = sorted((k.table, k.fields, k.spec.fts) for k in Kind)
    return (6 << 32) | zlib.crc32(repr(layout).encode())


_CHUNK = 10_000  # events folded in memory between writes to SQLite
# Bytes of terms a search index gathers in memory before writing them out (FTS5's default: 1 MB). Fewer,
# larger segments to merge: indexing 25,000 e-mails took 42 us each instead of 49 (CPU, SQLCipher).
_FTS_PENDING = 8 << 20
_INSERT = "INSERT INTO {}_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CLOSE = "UPDATE {}_history SET seq_to = ?, valid_to = ? WHERE id = ? AND seq_to IS NULL"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ddl(kind: Kind) -> str:
    t = kind.table
    return f"""
    CREATE TABLE {t}_history (
        id TEXT NOT NULL, seq_from INTEGER NOT NULL, seq_to INTEGER,
        valid_from TEXT NOT NULL, valid_to TEXT, event TEXT NOT NULL,
        deleted INTEGER NOT NULL, source TEXT NOT NULL, data TEXT
    );
    CREATE INDEX {t}_history_id ON {t}_history (id, seq_to);
    CREATE INDEX {t}_history_open ON {t}_history (seq_from, seq_to, deleted) WHERE seq_to IS NULL AND deleted = 0;
    CREATE INDEX {t}_history_changed ON {t}_history (valid_from);
    {_sort_index(kind)}
    CREATE VIEW {t} AS {table_select(kind)};
    CREATE VIEW {t}_text AS SELECT rowid AS version, {_fts_values(kind, "data")} FROM {t}_history;
    CREATE VIRTUAL TABLE {t}_fts USING fts5({_fts_cols(kind)}, content={t}_text, content_rowid=version);
    INSERT INTO {t}_fts ({t}_fts, rank) VALUES ('hashsize', {_FTS_PENDING});
    {_fts_trigger(kind)}
    """


def _sort_index(kind: Kind) -> str:
    """An index over every version in the order a kind is listed in (its sort field; `*_history_changed` is the
    order of last change). The live view and a past state alike then read a list's first page in index order instead of
    sorting every record (100,000 messages by date: 9 ms instead of 4.7 s at a load of 9). It also holds what says
    whether a version is open (now or at a past seq), so a later page skips the rows before it in the index alone:
    Datasette pages a view by OFFSET, and looking each skipped version up took 27 ms at offset 1,000 of 500,000
    messages (2 ms so), 10 times that at offset 10,000."""
    t, field = kind.table, kind.spec.sort
    return (f"CREATE INDEX {t}_history_sort ON {t}_history (json_extract(data, '$.{_q(field)}'), seq_to, deleted, "
            "seq_from);") if field else ""


def _fts_cols(kind: Kind) -> str:
    return ", ".join(_q(c) for c in kind.spec.fts)


def _fts_values(kind: Kind, data: str) -> str:
    """The searchable fields of a version's JSON `data`, named as columns."""
    return ", ".join(f"json_extract({data}, '$.{_q(c)}') AS {_q(c)}" for c in kind.spec.fts)


def _fts_trigger(kind: Kind) -> str:
    """Every version gets indexed as it is written: one index serves now and every past instant, since a
    version's rowid is its live row's rowid while it is the open one (see `query.table_select`)."""
    t = kind.table
    return (f"CREATE TRIGGER {t}_fts_new AFTER INSERT ON {t}_history WHEN new.data IS NOT NULL BEGIN "
            f"INSERT INTO {t}_fts (rowid, {_fts_cols(kind)}) SELECT new.rowid, {_fts_values(kind, 'new.data')}; END;")


def _run(conn: Any, script: str) -> None:
    """Run SQL statements one by one (`executescript` would commit the caller's transaction)."""
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                conn.execute(statement)
            statement = ""


# One event as the fold takes it: plain values, whether it was just appended or read back from the log.
Folded = tuple[int, EventType, Kind, int, str, str, str]  # seq, type, kind, recorded_at (µs), id, source, changes


def folded(r: Recorded) -> Folded:
    """An appended event as the fold takes it."""
    e = r.event
    return r.seq, e.type, e.kind, r.recorded_at, e.record_id, source_json(e.source), fields_json(e.changes)


def folded_parts(parts: Iterable[tuple]) -> Iterator[Folded]:
    """`EventLog.read_parts`' plain values as the fold takes them: the source and changes keep the text they
    were stored as (no objects, no JSON parsed or written again); TamperDetected on a code no one knows."""
    types, kinds = event_types(), {k.spec.code: k for k in Kind}
    for seq, t, k, at, record_id, source, changes in parts:
        try:
            yield seq, types[t], kinds[k], at, record_id, source.decode(), changes
        except KeyError as e:
            raise TamperDetected(seq, f"its content cannot be decoded (unknown code {e})") from e


class _Folder:
    """Folds events into pending history rows, so SQLite sees a few executemany
    calls per chunk instead of several statements per event."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[Kind, list[list[Any]]] = {k: [] for k in Kind}  # versions to insert
        self.closes: dict[Kind, list[tuple]] = {k: [] for k in Kind}  # versions already stored, to close
        self.open: dict[str, list[Any]] = {}  # record id -> its newest pending version
        self._second, self._prefix = -1, ""  # the last second `iso` spelled: events come in bursts

    def _iso(self, us: int) -> str:
        """`iso(us)`, with the date and time of day spelled once per second."""
        second, micro = divmod(us, 1_000_000)
        if second != self._second:
            self._second, self._prefix = second, iso(second * 1_000_000)[:19]
        return f"{self._prefix}.{micro:06d}Z"

    def fold(self, seq: int, type_: EventType, kind: Kind, recorded_at: int, record_id: str, source: str,
             changes: str) -> None:
        at = self._iso(recorded_at)
        prev_data: str | None = None
        if type_ is not EventType.CREATED:
            prev = self.open.get(record_id)
            if prev is not None:
                prev[2], prev[4], prev_data = seq, at, prev[8]
            else:
                prev_data = self.conn.execute(
                    f"SELECT data FROM {kind.table}_history WHERE id = ? AND seq_to IS NULL", (record_id,)
                ).fetchone()[0]
                self.closes[kind].append((seq, at, record_id))
        data: str | None
        if type_ is EventType.UPDATED:
            assert prev_data is not None  # an update follows a live version: the log refuses any other
            data = dumps(apply_patch(loads(prev_data), loads(changes)))
        else:
            data = None if type_ is EventType.DELETED else changes
        row = [record_id, seq, None, at, None, type_.value, int(type_ is EventType.DELETED), source, data]
        self.rows[kind].append(row)
        self.open[record_id] = row

    def flush(self) -> None:
        for kind in Kind:
            self.conn.executemany(_CLOSE.format(kind.table), self.closes[kind])
            self.conn.executemany(_INSERT.format(kind.table), self.rows[kind])
            self.closes[kind].clear()
            self.rows[kind].clear()
        self.open.clear()


class Projection(StateQuery):
    """An SQLite database (the state file, or a private in-memory one) holding the state the log describes up to `seq`.

    Several processes may share a state file: each reads it at will, and writes
    to it (catching up, appending) inside `transaction`, which holds its write
    lock and first rereads `seq`, since another process may have moved it on.
    """

    def __init__(self, conn: Any = None) -> None:
        """The projection in `conn`'s main database (made there if empty); a fresh in-memory one if None."""
        if conn is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.conn = conn
        self.conn.execute("BEGIN IMMEDIATE")  # two processes may find the same empty file
        try:
            if self.conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0:
                self._create()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.seq, version = self.conn.execute("SELECT seq, version FROM _projection").fetchone()
        if version != projection_version():
            raise sqlite3.DatabaseError(f"projection version {version}, not {projection_version()}")

    def _create(self) -> None:
        _run(self.conn, "".join(_ddl(k) for k in Kind))
        self.conn.execute("CREATE TABLE _projection (seq INTEGER NOT NULL, version INTEGER NOT NULL)")
        self.conn.execute(f"INSERT INTO _projection VALUES (0, {projection_version()})")

    def reset(self) -> None:
        """Empty the projection in place (it does not match the log): other processes may hold the file open."""
        with self.transaction():
            found = self.conn.execute("SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') "
                                      "AND name NOT LIKE 'sqlite_%' ORDER BY sql NOT LIKE 'CREATE VIRTUAL%'").fetchall()
            for type_, name in found:  # virtual tables first: each drops its own shadow tables
                self.conn.execute(f"DROP {type_.upper()} IF EXISTS {_q(name)}")
            self._create()
            self.seq = 0

    def close(self) -> None:
        self.conn.close()

    @property
    def imports(self) -> ImportQueries:
        """What imports did, for the import engine."""
        return ImportQueries(self.conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply inside one write transaction (rereading `seq` under its lock); on error the projection is as before."""
        self.conn.execute("BEGIN IMMEDIATE")
        seq = self.seq
        try:
            self.seq = self.conn.execute("SELECT seq FROM _projection").fetchone()[0]
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite may already have rolled it back (disk full)
                self.conn.execute("ROLLBACK")
            self.seq = seq
            raise

    # -- applying events -----------------------------------------------------
    def apply(self, events: Iterable[Recorded]) -> int:
        """Fold events (in seq order, following `seq`) into the history and its search index; returns how many."""
        return self.apply_folded(map(folded, events))

    def apply_folded(self, events: Iterable[Folded]) -> int:
        """`apply` for events as plain values (`folded`, `folded_parts`): a replay of the log folds them
        without making an object per event."""
        folder = _Folder(self.conn)
        first = self.seq == 0  # a first build: the search and sort indexes are filled in one pass at the end
        if first:
            for kind in Kind:
                # the index by last change stays: versions come in its order, so it only grows at its end
                self.conn.execute(f"DROP TRIGGER {kind.table}_fts_new")
                self.conn.execute(f"DROP INDEX IF EXISTS {kind.table}_history_sort")
        n, fold, pending = 0, folder.fold, folder.open
        for e in events:
            fold(*e)
            n += 1
            if len(pending) >= _CHUNK:
                folder.flush()
        folder.flush()
        if n:
            self.seq = e[0]
        if first:  # several times faster than a trigger per row
            for kind in Kind:
                self.conn.execute(f"INSERT INTO {kind.table}_fts ({kind.table}_fts) VALUES ('rebuild')")
                _run(self.conn, _sort_index(kind))
                _run(self.conn, _fts_trigger(kind))
        self.conn.execute("UPDATE _projection SET seq = ?", (self.seq,))
        return n
