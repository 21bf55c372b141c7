"""The decrypted state's one home: an encrypted SQLite file beside the vault (`<vault>.state`).

An SQLCipher 4 database (AES-256, an HMAC-SHA256 per 16 KB page) under a raw
key derived from the data key, so the file and its WAL hold nothing readable.
Memory stays bounded by SQLite's page cache whatever the size of the vault,
there is no ceiling below the disk, and reopening loads nothing.

It is shared like the vault file (WAL): any number of connections, in any
process, read it while one writes; a process that must write (to catch it up
with the log, or with an append of its own) waits for the current writer, a
rebuild included. It is never the record, the log is: a file that does not
open with this vault's key (another vault's, damaged beyond its header), of
another format, or that does not match the log (an older copy from before a
rollback, or another vault's history), is rebuilt by replaying, and the
reason is told in one sentence. Deleting it is always safe.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import sqlcipher3.dbapi2 as sqlcipher

from vault.errors import CannotWrite
from vault.paths import private_file
from vault.state.projection import Projection

CACHE_MB = 64  # SQLite's page cache: what bounds memory, whatever the size of the state
READER_CACHE_MB = 16  # the page cache of each read-only connection (a server holds several)
PAGE_SIZE = 16384  # one HMAC per 16 KB page, not per 4 KB
# SHA-256 rather than SQLCipher 4's default SHA-512: with the SHA extensions of today's x86 and ARM CPUs
# (OpenSSL uses them) it takes 18 us per 16 KB page here instead of 40, and a rebuild reads and writes every
# page at least once (a whole rebuild: ~10 us per event less). Still a 256-bit MAC per page.
HMAC = "HMAC_SHA256"
WAIT_S = 600  # how long a writer waits for another process's write (a rebuild of a lifetime archive included)
Error = (sqlcipher.DatabaseError, sqlite3.DatabaseError)  # what a file that does not read back raises


def path_for(vault_path: Path) -> Path:
    """Where a vault's state file lives: beside it, named after it."""
    return vault_path.with_name(vault_path.name + ".state")


def open_projection(path: Path, key: bytes, matches: Callable[[Projection], bool],
                    notify: Callable[[str], None] = lambda _: None) -> Projection:
    """The projection in the state file at `path`, made if missing. One that cannot be used is
    rebuilt (deleted if it does not open, emptied in place if it does not match) and `notify`
    is told why in one sentence; CannotWrite if no state file can be made there."""
    try:
        proj = Projection(connect(path, key))
    except Error as e:  # another vault's key, not a database, another format, damaged
        if _locked(e):  # another process held it past WAIT_S: busy, not damaged
            raise
        notify(f"The state file {path} could not be read ({_reason(e)}); it is rebuilt from the log.")
        remove(path)
        proj = _made(path, key)
    try:
        if not matches(proj):
            notify(f"The state file {path} does not match the vault's log (an older copy, or another vault's); "
                   "it is rebuilt from the log.")
            proj.reset()
    except BaseException:
        proj.close()
        raise
    return proj


def _made(path: Path, key: bytes) -> Projection:
    try:
        return Projection(connect(path, key))
    except (*Error, OSError) as e:
        raise CannotWrite(path, _reason(e)) from e


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).rstrip(".")


def key_pragma(key: bytes) -> str:
    """The raw key as SQLCipher's PRAGMA key and ATTACH … KEY take it (no passphrase derivation)."""
    return f"\"x'{key.hex()}'\""


def connect(path: Path, key: bytes) -> Any:
    """A connection to the state file (made if missing), keyed; raises sqlcipher.DatabaseError if `key`
    does not open it or it is not a database."""
    try:
        private_file(path)  # its -wal and -shm get the same mode from SQLite
    except OSError as e:
        raise CannotWrite(path, _reason(e)) from e
    conn = _keyed(path, key, CACHE_MB, "rwc")
    try:
        _wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # a cache: the rare power cut that loses a commit means a catch-up
    except BaseException:
        conn.close()
        raise
    return conn


def _wal(conn: Any) -> None:
    """WAL mode, so readers in other processes never wait for the writer. Switching a new file to it needs the
    file alone for a moment, and SQLite answers "locked" at once (its busy handler is not asked) when another
    process is opening the same new file: wait for that, as for any writer."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except Error as e:
            if not _locked(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _locked(e: BaseException) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def connect_reader(path: Path, key: bytes) -> Any:
    """A read-only connection to an existing state file (a server's readers)."""
    conn = _keyed(path, key, READER_CACHE_MB, "rw")
    conn.execute("PRAGMA query_only = 1")
    return conn


def _keyed(path: Path, key: bytes, cache_mb: int, mode: str) -> Any:
    uri = f"file:{quote(str(path))}?mode={mode}"
    conn = sqlcipher.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=WAIT_S)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # errors reach the caller, not stderr
        conn.execute(f"PRAGMA key = {key_pragma(key)}")
        conn.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
        conn.execute(f"PRAGMA cipher_hmac_algorithm = {HMAC}")
        conn.execute("PRAGMA cipher_memory_security = OFF")  # wiping every freed buffer costs much time
        conn.execute(f"PRAGMA cache_size = -{cache_mb * 1024}")
        conn.execute("PRAGMA temp_store = MEMORY")  # sorts never spill plaintext to a temp file
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # fails here on a wrong key
    except BaseException:
        conn.close()
        raise
    return conn


def is_damage(e: BaseException) -> bool:
    """Whether an error came from a state file that does not read back (damaged, altered, disk full); a file
    another process holds locked is busy, not damaged."""
    return isinstance(e, sqlcipher.DatabaseError) and not _locked(e)


def remove(path: Path) -> None:
    """Delete a state file and whatever SQLite kept beside it."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + "-journal")):
        p.unlink(missing_ok=True)
