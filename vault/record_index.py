"""Which records exist, and which of them are deleted: all an append has to check.

A few tens of bytes per record instead of the projection's every version, so
writing to a large vault (`lifevault add`, an API token that only appends)
needs neither the projection's memory nor its loading time. It is derived
from the log like the projection, and cached in the vault the same way.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterable, Iterator

from . import memdb
from .events import EventType, Kind, Recorded
from .projection import Projection


class RecordIndex:
    """Record id -> deleted or not, for every record the log has created, as of `seq`."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self.conn = conn or sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA temp_store = MEMORY")
        if conn is None:
            self.conn.execute("CREATE TABLE records (id TEXT PRIMARY KEY, deleted INTEGER NOT NULL) WITHOUT ROWID")
            self.conn.execute("CREATE TABLE _index (seq INTEGER NOT NULL)")
            self.conn.execute("INSERT INTO _index VALUES (0)")
        self.seq = self.conn.execute("SELECT seq FROM _index").fetchone()[0]

    @classmethod
    def of(cls, projection: Projection) -> "RecordIndex":
        """The index a projection implies (its open versions)."""
        index = cls()
        with index.transaction():
            for kind in Kind:
                rows = projection.conn.execute(f"SELECT id, deleted FROM {kind.table}_history WHERE seq_to IS NULL")
                index.conn.executemany("INSERT INTO records VALUES (?, ?)", rows)
            index.seq = projection.seq
            index.conn.execute("UPDATE _index SET seq = ?", (index.seq,))
        return index

    @classmethod
    def from_bytes(cls, data: bytes) -> "RecordIndex":
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.deserialize(data)
        return cls(conn)

    def pieces(self, size: int) -> Iterator[bytes]:
        """The index serialized, in pieces of `size` bytes (it is small: one copy is fine)."""
        return memdb.serialized_pieces(self.conn, size)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Apply inside one transaction; on error the index is as before."""
        seq = self.seq
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            self.seq = seq
            raise

    def apply(self, events: Iterable[Recorded]) -> None:
        """Note what events (in seq order, following `seq`) did to each record."""
        rows = []
        for r in events:
            rows.append((r.event.record_id, int(r.event.type is EventType.DELETED)))
            self.seq = r.seq
        self.conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?)", rows)
        self.conn.execute("UPDATE _index SET seq = ?", (self.seq,))

    def statuses(self, kind: Kind, ids: list[str]) -> dict[str, str]:
        """`live` or `deleted` for each of `ids` that ever existed (absent ones are left out)."""
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self.conn.execute(f"SELECT id, deleted FROM records WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update((rid, "deleted" if deleted else "live") for rid, deleted in rows)
        return out
