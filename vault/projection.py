"""The projection: plain SQLite tables rebuilt by replaying events.

Per kind, a live table (`contacts`, `messages`, `notes`: one row per live
record, one column per known field, unknown fields in `extra`) and a history
table (`contacts_history`, …: one row per version with seq_from/seq_to and
valid_from/valid_to), so "as of" is plain SQL. The database is in memory, or
an encrypted state file (`state_file`): plaintext never reaches disk except
through `restore` or an export.
"""

from __future__ import annotations

import sqlite3
import zlib
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from . import memdb
from .codec import dumps, fields_json, loads, source_json
from .errors import StateTooLarge
from .events import FIELDS, EventType, Kind, Recorded, apply_patch
from .instants import iso

# The tables' layout: the hand-kept number changes with how events fold; the checksum changes with the kinds'
# FIELDS (their columns), so a state file or snapshot made under other FIELDS is rebuilt rather than misread.
PROJECTION_VERSION = (1 << 32) | zlib.crc32(repr(sorted(FIELDS.items())).encode())
_BULK = 2000  # past this many touched records, rebuild live tables wholesale
_CHUNK = 10_000  # events folded in memory between writes to SQLite
_INSERT = "INSERT INTO {}_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CLOSE = "UPDATE {}_history SET seq_to = ?, valid_to = ? WHERE id = ? AND seq_to IS NULL"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def live_columns(kind: Kind) -> list[str]:
    return ["id", *FIELDS[kind], "extra", "created_at", "updated_at"]


def _ddl(kind: Kind) -> str:
    t = kind.table
    cols = ", ".join(f"{_q(f)}" for f in FIELDS[kind])
    return f"""
    CREATE TABLE {t} (id TEXT PRIMARY KEY, {cols}, extra TEXT, created_at TEXT, updated_at TEXT);
    CREATE TABLE {t}_history (
        id TEXT NOT NULL, seq_from INTEGER NOT NULL, seq_to INTEGER,
        valid_from TEXT NOT NULL, valid_to TEXT, event TEXT NOT NULL,
        deleted INTEGER NOT NULL, source TEXT NOT NULL, data TEXT
    );
    CREATE INDEX {t}_history_id ON {t}_history (id, seq_to);
    """


def _live_select(kind: Kind) -> str:
    """SQL selecting live-table rows from open versions: known fields as columns (lists and objects
    as JSON text), the rest in `extra`. SQLite's JSON functions do this 3-4x faster than Python."""
    t, fields = kind.table, FIELDS[kind]
    extracts = ", ".join(f"json_extract(h.data, '$.{_q(f)}')" for f in fields)
    paths = ", ".join(f"'$.{_q(f)}'" for f in fields)
    return (f"SELECT h.id, {extracts}, NULLIF(json_remove(h.data, {paths}), '{{}}'), "
            f"(SELECT MIN(f.valid_from) FROM {t}_history f WHERE f.id = h.id), h.valid_from "
            f"FROM {t}_history h WHERE h.seq_to IS NULL AND h.deleted = 0")


def _is_full(e: BaseException) -> bool:
    """Whether SQLite failed for want of room in the in-memory database."""
    return isinstance(e, MemoryError) or (isinstance(e, sqlite3.OperationalError) and "full" in str(e))


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
        prev_data = None
        if e.type is not EventType.CREATED:
            prev = self.open.get(e.record_id)
            if prev is not None:
                prev[2], prev[4], prev_data = r.seq, at, prev[8]
            else:
                prev_data = self.conn.execute(
                    f"SELECT data FROM {e.kind.table}_history WHERE id = ? AND seq_to IS NULL", (e.record_id,)
                ).fetchone()[0]
                self.closes[e.kind].append((r.seq, at, e.record_id))
        if e.type is EventType.UPDATED:
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
    """An SQLite database (in memory, or a state file) holding the state the log describes up to `seq`."""

    def __init__(self, name: str | None = None, conn: Any = None) -> None:
        """The projection held in memdb `name` (a fresh, empty one if None; `conn` if already connected).

        With `conn` and no name, the projection in that connection's database (a state file, see
        `state_file`): it keeps its live tables current, since whoever opens it next cannot know
        which ones this process left stale."""
        if conn is None:
            name = name or memdb.new_name()
            conn = memdb.connect(name)
        self.name, self.conn = name, conn
        if self.conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0:
            self.conn.executescript(  # one transaction: a state file is never left half made
                "BEGIN;" + "".join(_ddl(k) for k in Kind)
                + "CREATE TABLE _projection (seq INTEGER NOT NULL, version INTEGER NOT NULL);"
                + f"INSERT INTO _projection VALUES (0, {PROJECTION_VERSION}); COMMIT;")
        self.seq, version = self.conn.execute("SELECT seq, version FROM _projection").fetchone()
        if version != PROJECTION_VERSION:
            raise sqlite3.DatabaseError(f"projection version {version}, not {PROJECTION_VERSION}")
        self.eager_live = self.in_file  # True: every apply refreshes the live tables
        self._stale: dict[Kind, set[str] | None] = {k: set() for k in Kind}  # None: the whole table

    @property
    def in_file(self) -> bool:
        """Whether this projection lives in a state file rather than a named memdb."""
        return self.name is None

    def close(self) -> None:
        """Close the connection (a memdb projection is dropped with its last one)."""
        self.conn.close()

    @classmethod
    def load(cls, parts: Iterable[bytes]) -> "Projection":
        """A projection from the pieces `pieces` gave (a serialized SQLite database)."""
        name = memdb.new_name()
        try:
            return cls(name, memdb.load(name, parts))
        except MemoryError as e:
            raise StateTooLarge() from e

    def pieces(self, size: int) -> Iterator[bytes]:
        """The projection serialized, in pieces of `size` bytes; no writes until exhausted."""
        return memdb.pieces(self.conn, self.name, size)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply inside one transaction; on error the projection is as before."""
        seq, stale = self.seq, {k: None if ids is None else set(ids) for k, ids in self._stale.items()}
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException as e:
            if self.conn.in_transaction:  # SQLite may already have rolled it back (out of memory)
                self.conn.execute("ROLLBACK")
            self.seq = seq
            # A refresh inside the transaction was rolled back too: what was stale before still is.
            self._stale = {k: None if ids is None or self._stale[k] is None else ids | self._stale[k]
                           for k, ids in stale.items()}
            if _is_full(e):
                raise StateTooLarge() from e
            raise

    # -- applying events -----------------------------------------------------
    def apply(self, events: Iterable[Recorded]) -> int:
        """Fold events (in seq order, following `seq`) into the tables; returns how many.

        The history tables change at once; the live tables when `refresh_live` runs
        (at once if `eager_live`), since rebuilding live rows costs more than the
        rest of an append and most appends are never followed by a look at them.
        """
        folder = _Folder(self.conn)
        n = 0
        for r in events:
            folder.fold(r)
            ids = self._stale[r.event.kind]
            if ids is not None:
                ids.add(r.event.record_id)
                if len(ids) > _BULK:
                    self._stale[r.event.kind] = None
            self.seq = r.seq
            n += 1
            if len(folder.open) >= _CHUNK:
                folder.flush()
        folder.flush()
        if self.eager_live:
            self.refresh_live()
        self.conn.execute("UPDATE _projection SET seq = ?", (self.seq,))
        return n

    def refresh_live(self) -> None:
        """Bring the live tables in line with the history (a few rows, or whole tables after a big replay)."""
        stale, self._stale = self._stale, {k: set() for k in Kind}
        try:
            self.conn.execute("SAVEPOINT live")
            for kind, ids in stale.items():
                if ids is None or ids:
                    self._refresh_live(kind, ids)
            self.conn.execute("RELEASE live")
        except BaseException as e:
            if self.conn.in_transaction:  # SQLite may already have rolled everything back
                self.conn.execute("ROLLBACK TO live")
                self.conn.execute("RELEASE live")
            self._stale = stale
            if _is_full(e):
                raise StateTooLarge() from e
            raise

    def _refresh_live(self, kind: Kind, ids: set[str] | None) -> None:
        """Rewrite the live rows of `ids` (None: of every record) from their open versions."""
        t = kind.table
        if ids is None:
            self.conn.execute(f"DELETE FROM {t}")
            self.conn.execute(f"INSERT INTO {t} {_live_select(kind)}")
            return
        ordered = sorted(ids)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"DELETE FROM {t} WHERE id IN ({marks})", chunk)
            self.conn.execute(f"INSERT INTO {t} {_live_select(kind)} AND h.id IN ({marks})", chunk)

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
            v = dict(zip(cols, row))
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
        self.refresh_live()
        return self.conn.execute(f"SELECT count(*) FROM {kind.table}").fetchone()[0]

    def count_deleted(self, kind: Kind) -> int:
        return self.conn.execute(
            f"SELECT count(*) FROM {kind.table}_history WHERE seq_to IS NULL AND deleted = 1"
        ).fetchone()[0]
