"""Full-text search over the live tables, kept in its own named in-memory database.

The FTS5 tables live beside the projection, not in it, so encrypted snapshots
stay free of them. TEMP triggers on the projection's writer connection keep
them in step with every change; the first build runs in the background in
small chunks under the vault's lock, so the server is browsable at once.
Readers attach the index, so Datasette's `fts_table` finds `contacts_fts` & co.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ..events import Kind
from ..restore import FTS_COLUMNS
from .live import LiveVault, connect_memdb, memdb_uri

SCHEMA = "lvfts"  # the name the index is attached under
CHUNK = 20_000  # rows indexed per hold of the lock
DONE = 1 << 62  # progress mark once a table is fully indexed


def fts_table(kind: Kind) -> str:
    return f"{kind.table}_fts"


def _cols(kind: Kind) -> str:
    return ", ".join(f'"{c}"' for c in FTS_COLUMNS[kind])


class SearchIndex:
    """FTS5 indexes of contacts, messages and notes that follow the live projection."""

    def __init__(self, live: LiveVault) -> None:
        self.live = live
        self.name = live.name + "-fts"
        self._owner = connect_memdb(self.name)  # keeps the memdb alive
        self._owner.execute("CREATE TABLE _progress (tbl TEXT PRIMARY KEY, upto INTEGER NOT NULL)")
        for kind in Kind:
            self._owner.execute(f"CREATE VIRTUAL TABLE {fts_table(kind)} USING fts5({_cols(kind)})")
        self.ready = threading.Event()
        live.on_publish.append(self._install)
        with live.lock:
            self._install(live.vault.projection.conn)

    def attach(self, conn: sqlite3.Connection) -> None:
        """Make the index visible (read-only) on a reader connection."""
        conn.execute(f"ATTACH DATABASE '{memdb_uri(self.name, readonly=True)}' AS {SCHEMA}")

    def _install(self, writer: sqlite3.Connection) -> None:
        """Attach to the projection's writer and (re)start indexing from scratch."""
        if SCHEMA not in {row[1] for row in writer.execute("PRAGMA database_list")}:
            writer.execute(f"ATTACH DATABASE '{memdb_uri(self.name)}' AS {SCHEMA}")
        writer.execute("BEGIN")
        for kind in Kind:
            t, fts, cols = kind.table, fts_table(kind), _cols(kind)
            news = ", ".join(f'new."{c}"' for c in FTS_COLUMNS[kind])
            upto = f"(SELECT upto FROM _progress WHERE tbl = '{t}')"
            writer.execute(f"DELETE FROM {SCHEMA}.{fts}")
            writer.execute(f"INSERT OR REPLACE INTO {SCHEMA}._progress VALUES ('{t}', 0)")
            # Rows past the builder's mark are left to the builder.
            writer.execute(f"DROP TRIGGER IF EXISTS temp.{t}_fts_ins")
            writer.execute(f"DROP TRIGGER IF EXISTS temp.{t}_fts_del")
            writer.execute(f"CREATE TEMP TRIGGER {t}_fts_ins AFTER INSERT ON main.{t} WHEN new.rowid <= {upto} "
                           f"BEGIN INSERT INTO {fts} (rowid, {cols}) VALUES (new.rowid, {news}); END")
            writer.execute(f"CREATE TEMP TRIGGER {t}_fts_del AFTER DELETE ON main.{t} WHEN old.rowid <= {upto} "
                           f"BEGIN DELETE FROM {fts} WHERE rowid = old.rowid; END")
        writer.execute("COMMIT")
        self.ready.clear()

    def build(self) -> None:
        """Index every live row, a chunk at a time; changes meanwhile are never missed."""
        while not self.build_step():
            pass

    def build_step(self) -> bool:
        """Index one chunk; True once everything is indexed."""
        with self.live.lock:
            writer = self.live.vault.projection.conn
            done = True
            writer.execute("BEGIN")
            for kind in Kind:
                t, fts, cols = kind.table, fts_table(kind), _cols(kind)
                upto = writer.execute(f"SELECT upto FROM {SCHEMA}._progress WHERE tbl = ?", (t,)).fetchone()[0]
                if upto == DONE:
                    continue
                top = writer.execute(f"SELECT max(rowid) FROM main.{t}").fetchone()[0] or 0
                end = min(upto + CHUNK, top)
                writer.execute(f"INSERT INTO {SCHEMA}.{fts} (rowid, {cols}) SELECT rowid, {cols} FROM main.{t} "
                               "WHERE rowid > ? AND rowid <= ?", (upto, end))
                finished = end >= top
                writer.execute(f"UPDATE {SCHEMA}._progress SET upto = ? WHERE tbl = ?", (DONE if finished else end, t))
                done = done and finished
            writer.execute("COMMIT")
        if done:
            self.ready.set()
        return done

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.build, name="lifevault-fts", daemon=True)
        thread.start()
        return thread

    def search(self, conn: sqlite3.Connection, query: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
        """The best matches per table (id and a snippet), from a reader with the index attached."""
        out: dict[str, list[dict[str, Any]]] = {}
        for kind in Kind:
            fts = fts_table(kind)
            rows = conn.execute(
                f"SELECT t.id, snippet({fts}, -1, '[', ']', ' … ', 12) FROM {fts} "
                f"JOIN main.{kind.table} t ON t.rowid = {fts}.rowid WHERE {fts} MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
            out[kind.table] = [{"id": rid, "snippet": snip} for rid, snip in rows]
        return out

    def close(self) -> None:
        self._owner.close()
