"""The projection: plain SQLite tables rebuilt by replaying events.

Per kind, a live table (`contacts`, `messages`, `notes`: one row per live
record, one column per known field, unknown fields in `extra`) and a history
table (`contacts_history`, …: one row per version with seq_from/seq_to and
valid_from/valid_to), so "as of" is plain SQL. The database is in memory:
plaintext never reaches disk except through `restore` or an export.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from .codec import dumps
from .events import FIELDS, EventType, Kind, Recorded, apply_patch
from .instants import iso

PROJECTION_VERSION = 1
_BULK = 2000  # past this many touched records, rebuild live tables wholesale


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
    t = kind.table
    fields = FIELDS[kind]
    paths = ", ".join(f"'$.{_q(f)}'" for f in fields)
    extracts = ", ".join(f"json_extract(h.data, '$.{_q(f)}')" for f in fields)
    return (
        f"SELECT h.id, {extracts}, NULLIF(json_remove(h.data, {paths}), '{{}}'), "
        f"(SELECT MIN(valid_from) FROM {t}_history f WHERE f.id = h.id), h.valid_from "
        f"FROM {t}_history h WHERE h.seq_to IS NULL AND h.deleted = 0"
    )


class Projection:
    """An in-memory SQLite database holding the state the log describes up to `seq`."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        fresh = conn is None
        self.conn = conn or sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA temp_store = MEMORY")
        if fresh:
            self.conn.executescript("".join(_ddl(k) for k in Kind))
            self.conn.execute("CREATE TABLE _projection (seq INTEGER NOT NULL, version INTEGER NOT NULL)")
            self.conn.execute("INSERT INTO _projection VALUES (0, ?)", (PROJECTION_VERSION,))
        self.seq = self.conn.execute("SELECT seq FROM _projection").fetchone()[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> "Projection":
        """A projection from `to_bytes` output (a serialized SQLite database)."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.deserialize(data)
        return cls(conn)

    def to_bytes(self) -> bytes:
        return self.conn.serialize()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply inside one transaction; on error the projection is as before."""
        seq = self.seq
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            self.seq = seq
            raise

    # -- applying events -----------------------------------------------------
    def apply(self, events: Iterable[Recorded]) -> int:
        """Fold events (in seq order, following `seq`) into the tables; returns how many."""
        touched: dict[Kind, set[str]] = {k: set() for k in Kind}
        ex = self.conn.execute
        n = 0
        for r in events:
            e, t = r.event, r.event.kind.table
            at = iso(r.recorded_at)
            data: Any = None
            if e.type is not EventType.CREATED:
                row = ex(f"SELECT rowid, data FROM {t}_history WHERE id = ? AND seq_to IS NULL", (e.record_id,)).fetchone()
                ex(f"UPDATE {t}_history SET seq_to = ?, valid_to = ? WHERE rowid = ?", (r.seq, at, row[0]))
                if e.type is EventType.UPDATED:
                    data = dumps(apply_patch(json.loads(row[1]), e.changes)).decode()
            if e.type in (EventType.CREATED, EventType.REVIVED):
                data = dumps(e.changes).decode()
            ex(
                f"INSERT INTO {t}_history (id, seq_from, valid_from, event, deleted, source, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (e.record_id, r.seq, at, e.type.value, int(e.type is EventType.DELETED), dumps(e.source.as_dict()).decode(), data),
            )
            touched[e.kind].add(e.record_id)
            self.seq = r.seq
            n += 1
        for kind, ids in touched.items():
            if ids:
                self._refresh_live(kind, ids)
        ex("UPDATE _projection SET seq = ?", (self.seq,))
        return n

    def _refresh_live(self, kind: Kind, ids: set[str]) -> None:
        t, select = kind.table, _live_select(kind)
        if len(ids) > _BULK:
            self.conn.execute(f"DELETE FROM {t}")
            self.conn.execute(f"INSERT INTO {t} {select}")
            return
        marks = ",".join("?" * len(ids))
        self.conn.execute(f"DELETE FROM {t} WHERE id IN ({marks})", tuple(ids))
        self.conn.execute(f"INSERT INTO {t} {select} AND h.id IN ({marks})", tuple(ids))

    # -- reading -------------------------------------------------------------
    def record(self, kind: Kind, record_id: str, seq: int | None = None) -> dict[str, Any] | None:
        """A record's fields after event `seq` (default: now), or None if it was not live."""
        row = self._version_at(kind, record_id, self.seq if seq is None else seq)
        return json.loads(row[1]) if row and not row[0] else None

    def _version_at(self, kind: Kind, record_id: str, seq: int) -> tuple[int, str] | None:
        return self.conn.execute(
            f"SELECT deleted, data FROM {kind.table}_history WHERE id = ? AND seq_from <= ? "
            "AND (seq_to IS NULL OR seq_to > ?)",
            (record_id, seq, seq),
        ).fetchone()

    def status(self, kind: Kind, record_id: str) -> str:
        """`live`, `deleted` or `absent` (never existed), now."""
        row = self._version_at(kind, record_id, self.seq)
        return "absent" if row is None else ("deleted" if row[0] else "live")

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
            v["source"] = json.loads(v["source"])
            v["data"] = json.loads(v["data"]) if v["data"] is not None else None
            out.append(v)
        return out

    def state(self, kind: Kind, seq: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, fields) of every record live after event `seq` (default: now), by id."""
        s = self.seq if seq is None else seq
        cur = self.conn.execute(
            f"SELECT id, data FROM {kind.table}_history WHERE seq_from <= ? AND (seq_to IS NULL OR seq_to > ?) "
            "AND deleted = 0 ORDER BY id",
            (s, s),
        )
        for rid, data in cur:
            yield rid, json.loads(data)

    def count(self, kind: Kind) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {kind.table}").fetchone()[0]

    def count_deleted(self, kind: Kind) -> int:
        return self.conn.execute(
            f"SELECT count(*) FROM {kind.table}_history WHERE seq_to IS NULL AND deleted = 1"
        ).fetchone()[0]
