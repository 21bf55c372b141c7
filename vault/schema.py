"""The vault file: SQLite schema, pragmas and how to connect.

The schema enforces what it can: `seq INTEGER PRIMARY KEY` (a second event at
a seq would fork the chain), triggers that refuse UPDATE and DELETE on the log
and the blob store, and a single-row head. Only ciphertext, sizes, seqs and
chain hashes are stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import NewerFormat, NotAVault, VaultLocked
from .paths import private_file

FORMAT_VERSION = 1
APPLICATION_ID = 0x4C564C54  # "LVLT": marks the file as a lifevault vault
BUSY_TIMEOUT_MS = 10_000

DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, payload BLOB NOT NULL);
CREATE TABLE head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL, hash BLOB NOT NULL, mac BLOB NOT NULL, sig BLOB NOT NULL
);
CREATE TABLE blobs (id BLOB PRIMARY KEY, payload BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots (seq INTEGER NOT NULL, part INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (seq, part));
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END;
"""


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """Open (or, with create, make) a vault file with durable settings; checks it is a vault."""
    if not create and not path.is_file():
        raise NotAVault(path, "does not exist")
    try:
        if create:
            private_file(path)  # its -wal and -shm get the same mode from SQLite
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA temp_store = MEMORY")  # sorts and temp tables never touch disk
        if create:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(DDL)
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        _check_format(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as e:
        if "locked" in str(e):
            raise VaultLocked(path) from e
        raise NotAVault(path) from e
    return conn


def _check_format(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise NotAVault(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > FORMAT_VERSION:
        raise NewerFormat(path, version)
