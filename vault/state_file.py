"""The projection kept in an encrypted file beside the vault, for large vaults on small machines.

With `state_file=True` the projection is an SQLCipher database at
`<vault>.state` rather than an in-memory one. Memory then stays bounded by
SQLite's page cache whatever the size of the vault, there is no 2 GiB ceiling,
and reopening loads nothing: the file is the cache. Every page is encrypted
(SQLCipher 4: AES-256, an HMAC-SHA512 per page) under a raw key derived from
the data key, so the file holds nothing readable. It is never the record, the
log is: a file that does not open with this vault's key, or does not match the
log (left ahead of it by a crash, or from before a rollback), is deleted and
rebuilt by replaying. One process uses it at a time (an exclusive lock); any
other, or one that cannot make the file, works in memory as usual.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

import sqlcipher3.dbapi2 as sqlcipher

from .paths import private_file
from .projection import Projection

CACHE_MB = 64  # SQLite's page cache: what bounds memory, whatever the size of the state


def path_for(vault_path: Path) -> Path:
    """Where a vault's state file lives: beside it, named after it."""
    return vault_path.with_name(vault_path.name + ".state")


def open_projection(path: Path, key: bytes, matches: Callable[[Projection], bool]) -> Projection | None:
    """The projection in the state file at `path`; None if another process has it locked, or if
    no state file can be made there (the caller then works in memory).

    A file that does not open with `key` (another vault's, damaged), holds no
    usable projection, or for which `matches` is false, is replaced by an empty one."""
    proj = None
    try:
        proj = _projection(path, key)
        if proj is None or matches(proj):
            return proj
    except (sqlcipher.DatabaseError, sqlite3.DatabaseError, OSError):  # not this vault's key, damaged, another version, cannot be made
        pass
    except BaseException:  # e.g. the log itself found tampered while checking
        if proj is not None:
            proj.close()
        raise
    if proj is not None:
        proj.close()
    try:
        remove(path)
        return _projection(path, key)
    except (sqlcipher.DatabaseError, OSError):  # e.g. a read-only folder, or something else in the way
        return None


def _projection(path: Path, key: bytes) -> Projection | None:
    conn = _connect(path, key)
    if conn is None:
        return None
    try:
        return Projection(None, conn)
    except BaseException:
        conn.close()
        raise


def _connect(path: Path, key: bytes) -> sqlcipher.Connection | None:
    """The state file, opened (or created) with `key` and locked for this connection until it
    closes; None if another process holds it. Raises sqlcipher.DatabaseError if `key` does not open it."""
    private_file(path)  # its -journal gets the same mode from SQLite
    conn = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False, timeout=0)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # errors reach the caller, not stderr
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        conn.execute("PRAGMA cipher_page_size = 16384")  # one HMAC per 16 KB, not per 4 KB
        conn.execute("PRAGMA cipher_memory_security = OFF")  # wiping every freed buffer costs much time
        conn.execute(f"PRAGMA cache_size = -{CACHE_MB * 1024}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = TRUNCATE")  # its pages are encrypted too; a torn commit rolls back
        conn.execute("PRAGMA synchronous = NORMAL")  # a cache: the rare power cut that damages it means a rebuild
        conn.execute("BEGIN EXCLUSIVE")  # take the lock now
        conn.execute("COMMIT")
    except sqlcipher.OperationalError as e:
        conn.close()
        if "locked" in str(e):
            return None
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def is_damage(e: BaseException) -> bool:
    """Whether an error came from a state file that does not read back (damaged, altered, disk full)."""
    return isinstance(e, sqlcipher.DatabaseError)


def remove(path: Path) -> None:
    """Delete a state file and whatever SQLite kept beside it."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + "-journal")):
        p.unlink(missing_ok=True)
