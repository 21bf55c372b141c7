"""The projection: plain SQLite tables rebuilt by replaying events.

Per kind, a history table (`contacts_history`, …: one row per version with
seq_from/seq_to and valid_from/valid_to, the fields as JSON), an FTS5 index of
every version (`contacts_fts`, …, fed by a trigger) and a view of the live
records (`contacts`, `messages`, `notes`: the open versions, one column per
known field, unknown fields in `extra`). The live records are not copied: the
view reads the open versions through a partial index, so an append writes each
version once, and "as of" is the same SQL with another seq (`state_select`). The database is the vault's
encrypted state file (state_file.py), so plaintext never reaches disk except
through `restore` or an export; a private in-memory one serves tests and
reference replays.
"""

from __future__ import annotations

import sqlite3
import zlib
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from vault.store.codec import dumps, fields_json, loads, source_json
from vault.domain.events import FIELDS, EventType, Kind, Recorded, apply_patch
from vault.domain.instants import iso

# The tables' layout: the hand-kept number changes with how events fold (3: full-text indexes inside, live
# records a view of the open versions); the checksum changes with the kinds' FIELDS (their columns), so a state
# file made under other FIELDS is rebuilt rather than misread.
PROJECTION_VERSION = (3 << 32) | zlib.crc32(repr(sorted(FIELDS.items())).encode())
# Columns indexed for full-text search, per kind.
FTS_COLUMNS = {
    Kind.CONTACT: ["name", "emails", "phones", "organization", "note"],
    Kind.MESSAGE: ["from", "to", "subject", "body"],
    Kind.NOTE: ["title", "body", "tags"],
}
_CHUNK = 10_000  # events folded in memory between writes to SQLite
_INSERT = "INSERT INTO {}_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CLOSE = "UPDATE {}_history SET seq_to = ?, valid_to = ? WHERE id = ? AND seq_to IS NULL"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def live_columns(kind: Kind) -> list[str]:
    return ["id", *FIELDS[kind], "extra", "created_at", "updated_at"]


def _ddl(kind: Kind) -> str:
    t = kind.table
    return f"""
    CREATE TABLE {t}_history (
        id TEXT NOT NULL, seq_from INTEGER NOT NULL, seq_to INTEGER,
        valid_from TEXT NOT NULL, valid_to TEXT, event TEXT NOT NULL,
        deleted INTEGER NOT NULL, source TEXT NOT NULL, data TEXT
    );
    CREATE INDEX {t}_history_id ON {t}_history (id, seq_to);
    CREATE INDEX {t}_history_open ON {t}_history (seq_from) WHERE seq_to IS NULL AND deleted = 0;
    CREATE VIEW {t} AS {state_select(kind)};
    CREATE VIEW {t}_text AS SELECT rowid AS version, {_fts_values(kind, "data")} FROM {t}_history;
    CREATE VIRTUAL TABLE {t}_fts USING fts5({_fts_cols(kind)}, content={t}_text, content_rowid=version);
    {_fts_trigger(kind)}
    """


def _fts_cols(kind: Kind) -> str:
    return ", ".join(_q(c) for c in FTS_COLUMNS[kind])


def _fts_values(kind: Kind, data: str) -> str:
    """The searchable fields of a version's JSON `data`, named as columns."""
    return ", ".join(f"json_extract({data}, '$.{_q(c)}') AS {_q(c)}" for c in FTS_COLUMNS[kind])


def _fts_trigger(kind: Kind) -> str:
    """Every version gets indexed as it is written: one index serves now and every past instant, since a
    version's rowid is its live row's rowid while it is the open one (see `_live_select`)."""
    t = kind.table
    return (f"CREATE TRIGGER {t}_fts_new AFTER INSERT ON {t}_history WHEN new.data IS NOT NULL BEGIN "
            f"INSERT INTO {t}_fts (rowid, {_fts_cols(kind)}) SELECT new.rowid, {_fts_values(kind, 'new.data')}; END;")


def state_select(kind: Kind, seq: int | None = None) -> str:
    """SQL for the records live after event `seq` (default: now), shaped like a table: `rowid` (the version's,
    which the search index knows), `id`, the known fields as columns (lists and objects as JSON text), the rest
    in `extra`, `created_at` and `updated_at`."""
    t, fields = kind.table, FIELDS[kind]
    extracts = ", ".join(f"json_extract(h.data, '$.{_q(f)}') AS {_q(f)}" for f in fields)
    paths = ", ".join(f"'$.{_q(f)}'" for f in fields)
    when = ("h.seq_to IS NULL" if seq is None
            else f"h.seq_from <= {int(seq)} AND (h.seq_to IS NULL OR h.seq_to > {int(seq)})")
    return (f"SELECT h.rowid AS rowid, h.id AS id, {extracts}, NULLIF(json_remove(h.data, {paths}), '{{}}') AS extra, "
            f"(SELECT min(f.valid_from) FROM {t}_history f WHERE f.id = h.id) AS created_at, "
            f"h.valid_from AS updated_at FROM {t}_history h WHERE {when} AND h.deleted = 0")


def _run(conn: Any, script: str) -> None:
    """Run SQL statements one by one (`executescript` would commit the caller's transaction)."""
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                conn.execute(statement)
            statement = ""


class _Folder:
    """Folds events into pending history rows, so SQLite sees a few executemany
    calls per chunk instead of several statements per event."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[Kind, list[list[Any]]] = {k: [] for k in Kind}  # versions to insert
        self.closes: dict[Kind, list[tuple]] = {k: [] for k in Kind}  # versions already stored, to close
        self.open: dict[str, list[Any]] = {}  # record id -> its newest pending version

    def fold(self, r: Recorded) -> None:
        e, at = r.event, iso(r.recorded_at)
        prev_data: str | None = None
        if e.type is not EventType.CREATED:
            prev = self.open.get(e.record_id)
            if prev is not None:
                prev[2], prev[4], prev_data = r.seq, at, prev[8]
            else:
                prev_data = self.conn.execute(
                    f"SELECT data FROM {e.kind.table}_history WHERE id = ? AND seq_to IS NULL", (e.record_id,)
                ).fetchone()[0]
                self.closes[e.kind].append((r.seq, at, e.record_id))
        data: str | None
        if e.type is EventType.UPDATED:
            assert prev_data is not None  # an update follows a live version: the log refuses any other
            data = dumps(apply_patch(loads(prev_data), e.changes))
        else:
            data = None if e.type is EventType.DELETED else fields_json(e.changes)
        row = [e.record_id, r.seq, None, at, None, e.type.value, int(e.type is EventType.DELETED), source_json(e.source), data]
        self.rows[e.kind].append(row)
        self.open[e.record_id] = row

    def flush(self) -> None:
        for kind in Kind:
            self.conn.executemany(_CLOSE.format(kind.table), self.closes[kind])
            self.conn.executemany(_INSERT.format(kind.table), self.rows[kind])
            self.closes[kind].clear()
            self.rows[kind].clear()
        self.open.clear()


class Projection:
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
        if version != PROJECTION_VERSION:
            raise sqlite3.DatabaseError(f"projection version {version}, not {PROJECTION_VERSION}")

    def _create(self) -> None:
        _run(self.conn, "".join(_ddl(k) for k in Kind))
        self.conn.execute("CREATE TABLE _projection (seq INTEGER NOT NULL, version INTEGER NOT NULL)")
        self.conn.execute(f"INSERT INTO _projection VALUES (0, {PROJECTION_VERSION})")

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
        folder = _Folder(self.conn)
        first = self.seq == 0  # a first build: the search indexes are filled in one pass at the end
        if first:
            for kind in Kind:
                self.conn.execute(f"DROP TRIGGER {kind.table}_fts_new")
        n = 0
        for r in events:
            folder.fold(r)
            self.seq = r.seq
            n += 1
            if len(folder.open) >= _CHUNK:
                folder.flush()
        folder.flush()
        if first:  # several times faster than a trigger per row
            for kind in Kind:
                self.conn.execute(f"INSERT INTO {kind.table}_fts ({kind.table}_fts) VALUES ('rebuild')")
                _run(self.conn, _fts_trigger(kind))
        self.conn.execute("UPDATE _projection SET seq = ?", (self.seq,))
        return n

    # -- reading -------------------------------------------------------------
    def record(self, kind: Kind, record_id: str, seq: int | None = None) -> dict[str, Any] | None:
        """A record's fields after event `seq` (default: now), or None if it was not live."""
        row = self._version_at(kind, record_id, self.seq if seq is None else seq)
        return loads(row[1]) if row and not row[0] else None

    def _version_at(self, kind: Kind, record_id: str, seq: int) -> tuple[int, str] | None:
        return self.conn.execute(
            f"SELECT deleted, data FROM {kind.table}_history WHERE id = ? AND seq_from <= ? "
            "AND (seq_to IS NULL OR seq_to > ?)",
            (record_id, seq, seq),
        ).fetchone()

    def has_version(self, kind: Kind, record_id: str, seq: int, valid_from: str) -> bool:
        """Whether event `seq`, recorded at `valid_from`, made a version of this record."""
        return self.conn.execute(
            f"SELECT 1 FROM {kind.table}_history WHERE id = ? AND seq_from = ? AND valid_from = ?",
            (record_id, seq, valid_from),
        ).fetchone() is not None

    def status(self, kind: Kind, record_id: str) -> str:
        """`live`, `deleted` or `absent` (never existed), now."""
        return self.statuses(kind, [record_id]).get(record_id, "absent")

    def statuses(self, kind: Kind, ids: list[str]) -> dict[str, str]:
        """`live` or `deleted` now for each of `ids` that ever existed (absent ones are left out)."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.conn.execute(
                f"SELECT id, deleted FROM {kind.table}_history WHERE seq_to IS NULL AND id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            out.update((rid, "deleted" if deleted else "live") for rid, deleted in rows)
        return out

    def versions(self, kind: Kind, record_id: str) -> list[dict[str, Any]]:
        """Every version of a record, oldest first, with the event and source that made it."""
        cur = self.conn.execute(
            f"SELECT seq_from, seq_to, valid_from, valid_to, event, deleted, source, data "
            f"FROM {kind.table}_history WHERE id = ? ORDER BY seq_from",
            (record_id,),
        )
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur:
            v = dict(zip(cols, row, strict=True))
            v["source"] = loads(v["source"])
            v["data"] = loads(v["data"]) if v["data"] is not None else None
            out.append(v)
        return out

    def state(self, kind: Kind, seq: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, fields) of every record live after event `seq` (default: now), in the order their
        versions were written (the same for every replay of the same log)."""
        s = self.seq if seq is None else seq
        # A scan in rowid order is the cheapest there is; sorting by id cost a quarter of the time.
        cur = self.conn.execute(
            f"SELECT id, data FROM {kind.table}_history WHERE seq_from <= ? AND (seq_to IS NULL OR seq_to > ?) "
            "AND deleted = 0 ORDER BY rowid",
            (s, s),
        )
        for rid, data in cur:
            yield rid, loads(data)

    def count(self, kind: Kind) -> int:
        return self.conn.execute(
            f"SELECT count(*) FROM {kind.table}_history WHERE seq_to IS NULL AND deleted = 0").fetchone()[0]

    def count_deleted(self, kind: Kind) -> int:
        # Open versions are counted from the (id, seq_to) index alone, live ones from the partial index: no row is read.
        opened = self.conn.execute(f"SELECT count(*) FROM {kind.table}_history WHERE seq_to IS NULL").fetchone()[0]
        return opened - self.count(kind)
