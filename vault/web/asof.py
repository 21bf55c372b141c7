"""The whole vault as it stood after event N, as its own named in-memory database.

"As of" is plain SQL over the projection's *_history tables (seq_from/seq_to):
each state is materialized once into a memdb shaped exactly like the live
tables (plus FTS), so every Datasette page, facet and search works on it
unchanged. A few recent states are kept; older ones are dropped.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import OrderedDict

from .. import memdb
from ..events import FIELDS, Kind
from ..instants import iso
from ..projection import live_columns
from ..restore import FTS_COLUMNS
from .live import LiveVault
from .search import fts_table

KEEP = 4  # materialized states kept in memory
STATE_CHUNK = 50_000  # history rows copied per hold of the vault's lock
EAGER_FTS_ROWS = 200_000  # states up to this many rows are indexed for search at once; larger ones when first searched


_NAME = re.compile(r"^asof_(\d+)(?:_b\d+)?$")


def database_name(seq: int) -> str:
    """The Datasette route (URL segment) of the state after event `seq`."""
    return f"asof_{seq}"


def seq_of(database: str) -> int | None:
    """The seq an as-of route (`asof_N`) or Datasette name (`asof_N_bK`, one per build) stands for, else None."""
    m = _NAME.match(database)
    return int(m.group(1)) if m else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _state_sql(kind: Kind) -> str:
    """Rows of the live table's shape for the records live after event :seq."""
    t, fields = kind.table, FIELDS[kind]
    extracts = ", ".join(f"json_extract(h.data, '$.{_q(f)}')" for f in fields)
    paths = ", ".join(f"'$.{_q(f)}'" for f in fields)
    return (
        f"SELECT h.id, {extracts}, NULLIF(json_remove(h.data, {paths}), '{{}}'), "
        f"(SELECT min(f.valid_from) FROM p.{t}_history f WHERE f.id = h.id), h.valid_from "
        f"FROM p.{t}_history h WHERE h.seq_from <= :seq AND (h.seq_to IS NULL OR h.seq_to > :seq) AND h.deleted = 0"
    )


class AsOfStates:
    """Materialized past states, built on demand and kept in a small LRU."""

    def __init__(self, live: LiveVault, keep: int = KEEP) -> None:
        self.live, self.keep = live, keep
        self._conns: OrderedDict[int, tuple[str, sqlite3.Connection]] = OrderedDict()
        self._builds = 0
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def ensure(self, seq: int) -> tuple[str, list[int]]:
        """Build the state after `seq` unless kept; returns its memdb name and the seqs evicted."""
        with self._lock:
            if seq in self._conns:
                self._conns.move_to_end(seq)
                return self._conns[seq][0], []
        with self._building:  # one build at a time; a second request for the same state waits for the first
            with self._lock:
                if seq in self._conns:
                    return self._conns[seq][0], []
            self._builds += 1
            name = f"{self.live.name}-at-{seq}-b{self._builds}"  # a dropped state's readers may outlive it
            conn = self._materialize(seq, name)
            with self._lock:
                self._conns[seq] = (name, conn)
                evicted = []
                while len(self._conns) > self.keep:
                    old, (_, c) = self._conns.popitem(last=False)
                    c.close()
                    evicted.append(old)
        return name, evicted

    def _materialize(self, seq: int, name: str) -> sqlite3.Connection:
        conn = memdb.connect(name)
        for kind in Kind:
            # No declared key: Datasette then links rows by rowid and `id` cells go to the record's timeline.
            conn.execute(f"CREATE TABLE {kind.table} ({', '.join(_q(c) for c in live_columns(kind))})")
        with self.live.lock:
            recorded_at = iso(self.live.vault.log.recorded_at(seq)) if seq else None
            conn.execute(f"ATTACH DATABASE '{memdb.uri(self.live.name, readonly=True)}' AS p")
            tops = {k: conn.execute(f"SELECT max(rowid) FROM p.{k.table}_history").fetchone()[0] or 0 for k in Kind}
        # Copied a chunk of history rows at a time, each under the vault's lock and in its own read
        # transaction, so writes wait for one chunk, never for the whole state. Appends meanwhile
        # cannot change it: they add rows after `seq` and only ever close versions later than it.
        for kind in Kind:
            for lo in range(0, tops[kind], STATE_CHUNK):
                with self.live.lock:
                    conn.execute(f"INSERT INTO {kind.table} {_state_sql(kind)} AND h.rowid > :lo AND h.rowid <= :hi",
                                 {"seq": seq, "lo": lo, "hi": lo + STATE_CHUNK})
        conn.execute("DETACH DATABASE p")
        conn.execute("BEGIN")
        for kind in Kind:
            conn.execute(f"CREATE UNIQUE INDEX {kind.table}_id ON {kind.table} (id)")
        conn.execute("CREATE TABLE as_of (seq INTEGER, recorded_at TEXT)")
        conn.execute("INSERT INTO as_of VALUES (?, ?)", (seq, recorded_at))
        conn.execute("COMMIT")
        rows = sum(conn.execute(f"SELECT count(*) FROM {k.table}").fetchone()[0] for k in Kind)
        if rows <= EAGER_FTS_ROWS:
            _index(conn)
        return conn

    def ensure_searchable(self, seq: int) -> None:
        """Full-text index a kept state (large states are indexed only when first searched)."""
        with self._building:
            with self._lock:
                kept = self._conns.get(seq)
            if kept is not None and not _indexed(kept[1]):
                _index(kept[1])

    def close(self) -> None:
        with self._lock:
            for _, c in self._conns.values():
                c.close()
            self._conns.clear()


def _indexed(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (fts_table(Kind.NOTE),)).fetchone() is not None


def _index(conn: sqlite3.Connection) -> None:
    """External-content FTS5 over a state's tables (a state never changes, so no triggers)."""
    conn.execute("BEGIN")
    for kind in Kind:
        fts, cols = fts_table(kind), ", ".join(_q(c) for c in FTS_COLUMNS[kind])
        conn.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content={_q(kind.table)})")
        conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")
    conn.execute("COMMIT")
