"""The vault file: SQLite schema, pragmas and how to connect.

The schema enforces what it can: `seq INTEGER PRIMARY KEY` (a second event at
a seq would fork the chain), triggers that refuse UPDATE and DELETE on the log
and the blob store, and a single-row head. Only ciphertext, sizes, seqs and
chain hashes are stored.

Every statement that shapes the file is here: format 1, then `MIGRATIONS`, one
per later format, keyed by SQLite's `user_version` (format 2 adds the `seal`
row of seal.py; a format-1 file gets it when next written with the passphrase),
and the tables made by their first write. SQLite errors met while reading are turned
into `DamagedFile` here, so a damaged page is named as damage, never as "not
a vault" or a traceback.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vault.errors import DamagedFile, NewerFormat, NotAVault, VaultLocked
from vault.paths import private_file

APPLICATION_ID = 0x4C564C54  # "LVLT": marks the file as a lifevault vault
BUSY_TIMEOUT_MS = 10_000
# The page size of a new vault file (an existing file keeps its own). Measured on the lifetime archive
# (bench_archive, scale 0.02; sizes as dbstat counts them): a row that does not fit the rightmost leaf
# starts a new page, and e-mail rows of 1-20 KB left 14% of 4 KB event pages empty, 7% of 32 KB ones and
# 4% of 64 KB ones (attachments, which would lose half a page each, are stored in parts: see format 3).
PAGE_SIZE = 65536
WAL_BYTES = 4 << 20  # checkpoint when the WAL holds this much: SQLite's default 1,000 pages, in 4 KB pages

# Every statement that shapes the vault file lives in this module. The text of each is part of the format:
# `check_schema` compares the SQL stored in a file with these strings, so a table's statement is never edited,
# only superseded by a migration.

# Format 1: the log, its head, the key material and the attachments, as lifevault first wrote them.
FORMAT_1: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, payload BLOB NOT NULL)",
    """CREATE TABLE head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL, hash BLOB NOT NULL, mac BLOB NOT NULL, sig BLOB NOT NULL
)""",
    "CREATE TABLE blobs (id BLOB PRIMARY KEY, payload BLOB NOT NULL) WITHOUT ROWID",
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END""",
    """CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END""",
    """CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END""",
)


@dataclass(frozen=True)
class Migration:
    """What format `to` adds to a file of format `to - 1`; run inside the writer's transaction."""

    to: int
    why: str
    statements: tuple[str, ...]


# In order, one per format after the first; a file is brought up by running those past its user_version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "the seal: token rows, key material and attachments bound to the signed head (seal.py); a "
                 "format-1 file is sealed by the first write after it is opened with the passphrase", (
        """CREATE TABLE IF NOT EXISTS seal (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL, counter INTEGER NOT NULL,
    tokens BLOB NOT NULL, keys BLOB NOT NULL, blob_count INTEGER NOT NULL, blob_set BLOB NOT NULL,
    mac BLOB NOT NULL, sig BLOB NOT NULL
)""",
    )),
    Migration(3, "attachments in parts (blobs.PART_BYTES each) in a table filled in order, their blobs row left empty: "
                 "a whole attachment ends in an overflow page half empty on average, 32 KB at 64 KB pages, while "
                 "parts fill leaf pages one after another; attachments stored before stay whole", (
        "CREATE TABLE IF NOT EXISTS blob_parts (n INTEGER PRIMARY KEY, id BLOB NOT NULL, part BLOB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS blob_parts_by_id ON blob_parts (id)",
        """CREATE TRIGGER IF NOT EXISTS blob_parts_no_update BEFORE UPDATE ON blob_parts
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END""",
        """CREATE TRIGGER IF NOT EXISTS blob_parts_no_delete BEFORE DELETE ON blob_parts
    BEGIN SELECT RAISE(ABORT, 'the blob store is append-only'); END""",
    )),
)
FORMAT_VERSION = MIGRATIONS[-1].to
SEALED_FROM = 2  # the first format with a seal row
PARTS_FROM = 3  # the first format that stores attachments in parts

# Tables made by their first write, in any format: a vault without tokens (or API batches) has none.
TOKENS_DDL = """
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    token_hash BLOB UNIQUE,
    created_at INTEGER NOT NULL,
    append_only INTEGER NOT NULL,
    revoked_at INTEGER,
    mac BLOB NOT NULL
)
"""
BATCHES_DDL = """
CREATE TABLE IF NOT EXISTS api_batches (
    key BLOB PRIMARY KEY,
    digest BLOB NOT NULL,
    result TEXT NOT NULL,
    stored_at INTEGER NOT NULL
) WITHOUT ROWID
"""

# On one connection only, never in the file: the blobs a write adds, for the seal (seal.track_new_blobs).
TRACK_NEW_BLOBS: tuple[str, ...] = (
    "CREATE TEMP TABLE IF NOT EXISTS lv_new_blobs (id BLOB)",
    "CREATE TEMP TRIGGER IF NOT EXISTS lv_blob_added AFTER INSERT ON main.blobs "
    "BEGIN INSERT INTO lv_new_blobs (id) VALUES (NEW.id); END",
)


def current_statements() -> tuple[str, ...]:
    """The statements that make a file of this format: format 1, then every migration in order."""
    return FORMAT_1 + tuple(st for m in MIGRATIONS for st in m.statements)


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
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before the first write fixes it
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL")
            _create(conn)
        _check_format(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, WAL_BYTES // page_size)}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")  # a long-open vault's WAL shrinks after an import
    except sqlite3.DatabaseError as e:
        if "locked" in str(e):
            raise VaultLocked(path) from e
        if not create and _claims_to_be_a_vault(path):
            raise damaged(path, e) from e
        raise NotAVault(path) from e
    return conn


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in current_statements():
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
    conn.execute("COMMIT")


def _claims_to_be_a_vault(path: Path) -> bool:
    """Whether the file's header carries our application id: a vault whose pages SQLite cannot read is
    damaged, not a stranger."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return False
    return header[68:72] == APPLICATION_ID.to_bytes(4, "big")


def damaged(path: Path | str, e: Exception) -> DamagedFile:
    """The one-sentence error for an SQLite (or text-decoding) failure while reading `path`."""
    # SQLite's decoding errors quote the undecodable value, many lines of it: keep the sentence short
    detail = (str(e).split(" with text ")[0].splitlines() or [""])[0][:200].rstrip(".") or type(e).__name__
    if isinstance(e, UnicodeDecodeError) or "decode" in detail:
        return DamagedFile(path, f"a text value cannot be decoded ({detail})")
    return DamagedFile(path, f"SQLite cannot read it ({detail})")


def check_structure(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's own integrity check (b-tree order, page links, index entries): DamagedFile naming the
    first problems it reports."""
    try:
        found = [r[0] for r in conn.execute("PRAGMA integrity_check(4)")]
    except sqlite3.DatabaseError as e:
        raise damaged(path, e) from e
    if found != ["ok"]:
        lines = [line for item in found for line in str(item).splitlines() if not line.startswith("***")]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise DamagedFile(path, f"SQLite's integrity check reports {(lines or ['damage'])[0]!r}{more}")


# The tables the checks rely on. A `snapshots` table (sealed projection caches written by older lifevaults)
# is ignored where found: dropping its pages for good would take a VACUUM, a rewrite of the whole file.
_CHECKED_TABLES = ("meta", "events", "head", "blobs", "blob_parts", "seal", "api_tokens")


def _schema_of(conn: sqlite3.Connection) -> dict[str, tuple[str, str, str | None]]:
    marks = ",".join("?" * len(_CHECKED_TABLES))
    rows = conn.execute(f"SELECT name, type, tbl_name, sql FROM sqlite_master WHERE tbl_name IN ({marks})",
                        _CHECKED_TABLES)
    return {name: (kind, table, sql) for name, kind, table, sql in rows}


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """DamagedFile unless the tables, indexes and triggers the checks rely on are exactly as lifevault makes
    them: a renamed column or a dropped append-only trigger is damage (or tampering) too."""
    reference = sqlite3.connect(":memory:")
    try:
        for statement in (*current_statements(), TOKENS_DDL):
            reference.execute(statement)
        expected = _schema_of(reference)
    finally:
        reference.close()
    try:
        found = _schema_of(conn)
        found_format = format_of(conn)
    except sqlite3.DatabaseError as e:
        raise damaged(path, e) from e
    for name, (kind, table, sql) in expected.items():
        optional = (table == "api_tokens" or (table == "seal" and found_format < SEALED_FROM)
                    or (table == "blob_parts" and found_format < PARTS_FROM))
        if name not in found and not optional:
            raise DamagedFile(path, f"the {kind} {name} is missing from its schema")
        if name in found and found[name] != (kind, table, sql):
            raise DamagedFile(path, f"the {kind} {name} in its schema is not as lifevault made it")
    for name, (kind, table, _) in found.items():
        if name not in expected:
            raise DamagedFile(path, f"its schema has a {kind} {name} on {table} that lifevault did not make")


def format_of(conn: sqlite3.Connection) -> int:
    """The format a vault file is in (SQLite's user_version)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring an older file to this format inside the caller's write transaction, one migration per format
    it lacks; returns the format it was in."""
    found = format_of(conn)
    for m in MIGRATIONS:
        if found < m.to:
            for statement in m.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {m.to}")
    return found


def _check_format(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise NotAVault(path)
    version = format_of(conn)
    if version > FORMAT_VERSION:
        raise NewerFormat(path, version)
