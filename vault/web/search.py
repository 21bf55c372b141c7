"""Full-text search over the live tables, kept in its own named in-memory database.

The FTS5 tables live beside the projection, not in it, so encrypted snapshots
stay free of them. TEMP triggers on the projection's writer connection keep
them in step with every change; the first build runs in the background in
small chunks under the vault's lock, so the server is browsable at once and
search is complete a little later.
Readers attach the index, so Datasette's `fts_table` finds `contacts_fts` & co.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from .. import memdb
from ..events import Kind
from ..restore import FTS_COLUMNS
from .live import LiveVault

SCHEMA = "lvfts"  # the name the index is attached under
CHUNK = 5_000  # rows indexed per hold of the vault's lock: short, so writes are not kept waiting
PAUSE = 0.005  # seconds between chunks, so waiting writers get the lock
DONE = 1 << 62  # progress mark once a table is fully indexed


def fts_table(kind: Kind) -> str:
    return f"{kind.table}_fts"


def _cols(kind: Kind) -> str:
    return ", ".join(f'"{c}"' for c in FTS_COLUMNS[kind])


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE _progress (tbl TEXT PRIMARY KEY, upto INTEGER NOT NULL)")
    for kind in Kind:
        conn.execute(f"CREATE VIRTUAL TABLE {fts_table(kind)} USING fts5({_cols(kind)})")
        conn.execute("INSERT INTO _progress VALUES (?, 0)", (kind.table,))


def search(conn: sqlite3.Connection, query: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
    """The newest matches per table (id and a snippet) on a connection that sees `*_fts` tables.

    Newest first rather than by rank: ranking a common word scores every match,
    seconds on a million rows; walking rowids backwards stops after `limit`.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in Kind:
        fts = fts_table(kind)
        rows = conn.execute(
            f"SELECT t.id, snippet({fts}, -1, '[', ']', ' … ', 12) FROM {fts} "
            f"JOIN main.{kind.table} t ON t.rowid = {fts}.rowid WHERE {fts} MATCH ? ORDER BY {fts}.rowid DESC LIMIT ?",
            (query, limit),
        ).fetchall()
        out[kind.table] = [{"id": rid, "snippet": snip} for rid, snip in rows]
    return out


class SearchIndex:
    """FTS5 indexes of contacts, messages and notes that follow the live projection.

    The first build fills a private staging memdb (readers never wait on it);
    when complete it is copied into the memdb readers attach, in one step.
    """

    def __init__(self, live: LiveVault) -> None:
        self.live = live
        self.name = live.name + "-fts"
        self._final = memdb.connect(self.name)  # keeps the readers' memdb alive
        _create_tables(self._final)
        self._staging: sqlite3.Connection | None = None
        self._builds = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        live.on_publish.append(self._install)
        with live.lock:
            self._install(live.vault.projection.conn)

    def attach(self, conn: sqlite3.Connection) -> None:
        """Make the index visible (read-only) on a reader connection."""
        conn.execute(f"ATTACH DATABASE '{memdb.uri(self.name, readonly=True)}' AS {SCHEMA}")

    def _install(self, writer: sqlite3.Connection) -> None:
        """(Re)start indexing from scratch into a fresh staging memdb, attached to the projection's writer."""
        self.ready.clear()
        self._builds += 1
        staging_name = f"{self.name}-build{self._builds}"
        if self._staging is not None:
            self._staging.close()
        self._staging = memdb.connect(staging_name)
        _create_tables(self._staging)
        if SCHEMA in {row[1] for row in writer.execute("PRAGMA database_list")}:
            writer.execute(f"DETACH DATABASE {SCHEMA}")
        writer.execute(f"ATTACH DATABASE '{memdb.uri(staging_name)}' AS {SCHEMA}")
        for kind in Kind:
            t, fts, cols = kind.table, fts_table(kind), _cols(kind)
            news = ", ".join(f'new."{c}"' for c in FTS_COLUMNS[kind])
            upto = f"(SELECT upto FROM _progress WHERE tbl = '{t}')"
            # Rows past the builder's mark are left to the builder.
            writer.execute(f"DROP TRIGGER IF EXISTS temp.{t}_fts_ins")
            writer.execute(f"DROP TRIGGER IF EXISTS temp.{t}_fts_del")
            writer.execute(f"CREATE TEMP TRIGGER {t}_fts_ins AFTER INSERT ON main.{t} WHEN new.rowid <= {upto} "
                           f"BEGIN INSERT INTO {fts} (rowid, {cols}) VALUES (new.rowid, {news}); END")
            writer.execute(f"CREATE TEMP TRIGGER {t}_fts_del AFTER DELETE ON main.{t} WHEN old.rowid <= {upto} "
                           f"BEGIN DELETE FROM {fts} WHERE rowid = old.rowid; END")

    def build(self) -> None:
        """Index every live row, a chunk at a time; changes meanwhile are never missed."""
        while not self._stop.is_set() and not self.build_step():
            time.sleep(PAUSE)

    def stop(self) -> None:
        """Make a running `build` return after its current chunk (the server is shutting down)."""
        self._stop.set()

    def build_step(self) -> bool:
        """Index one chunk; once everything is indexed, publish the index to readers and return True."""
        with self.live.lock:
            if self.ready.is_set():
                return True
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
                self._publish(writer)
        return done

    def _publish(self, writer: sqlite3.Connection) -> None:
        """Copy the finished staging index over the readers' one; the writer's triggers follow it."""
        assert self._staging is not None
        writer.execute(f"DETACH DATABASE {SCHEMA}")
        self._staging.backup(self._final)
        self._staging.close()
        self._staging = None
        writer.execute(f"ATTACH DATABASE '{memdb.uri(self.name)}' AS {SCHEMA}")
        self.ready.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.build, name="lifevault-fts", daemon=True)
        thread.start()
        return thread

    def search(self, conn: sqlite3.Connection, query: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
        return search(conn, query, limit)

    def close(self) -> None:
        if self._staging is not None:
            self._staging.close()
        self._final.close()
