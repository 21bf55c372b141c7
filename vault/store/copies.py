"""A vault file made from another copy's raw rows, nothing decrypted: a replica's (clone, a full replica
check, `pull --fork`), byte for byte the rows of the vault that pushed them, or the vault's own
(`write_anew`: `lifevault compact`, an older file in this format's page size and layout).

The rows go in through `log.insert_rows`, the same checked way a pull appends them: seqs from 1 with no
gap, every chain hash from the vault id's genesis, and a head that names the last row.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping

from vault.errors import AlreadyExists, CannotWrite, TamperDetected
from vault.store import blobs, crypto, keyring, schema
from vault.store.log import EventLog, Head, Row, insert_rows

_SIDE_TABLES = {"seal": None, "api_tokens": schema.TOKENS_DDL, "api_batches": schema.BATCHES_DDL}  # table: DDL if made on use


def build_file(path: Path, meta: Mapping[str, Any], row_batches: Iterable[Iterable[Row]],
               blob_pairs: Iterable[tuple[bytes, bytes]], head: Head | None) -> None:
    """Create the vault file `path` from its key material (`meta` rows), its event rows (in batches, in seq
    order), its sealed attachments and its signed head (None for a vault without events). TamperDetected
    when the rows do not chain up to the head; sqlite3 errors pass through for the caller to name."""
    _build(path, meta, row_batches, blob_pairs, head, None)


def write_anew(path: Path, out: Path) -> None:
    """Write the vault file `path` to the new file `out` in this format's page size and layout (attachments in
    parts), nothing decrypted: every row the checks rely on as it is, head and seal included, so `out` verifies
    as the same vault. Read in one transaction, so a write meanwhile is wholly in the copy or not at all; `out`
    appears only once whole. Old caches (format 1's snapshots) are left out."""
    if out.exists():
        raise AlreadyExists(out)
    if not out.parent.is_dir():
        raise CannotWrite(out, f"the folder {out.parent} does not exist")
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    conn = schema.connect(path)
    try:
        conn.execute("BEGIN")
        log = EventLog(conn, path, None)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        rows = log.rows()
        batches = iter(lambda: list(itertools.islice(rows, 5000)), [])  # bounded memory on a lifetime archive
        _build(partial, meta, batches, blobs.sealed_rows(conn), log.head(), conn)
        os.link(partial, out)  # never over a file that appeared meanwhile
    except FileExistsError:
        raise AlreadyExists(out) from None
    except (OSError, sqlite3.Error) as e:  # a full disk, a read-only folder
        raise CannotWrite(out, str(e).splitlines()[0][:200]) from e
    finally:
        conn.close()  # ends the read transaction
        for leftover in (partial, partial.with_name(partial.name + "-wal"), partial.with_name(partial.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _build(path: Path, meta: Mapping[str, Any], row_batches: Iterable[Iterable[Row]],
           blob_pairs: Iterable[tuple[bytes, bytes]], head: Head | None, sides: sqlite3.Connection | None) -> None:
    conn = schema.connect(path, create=True)
    try:
        conn.execute("BEGIN IMMEDIATE")
        keyring.insert_meta(conn, meta)
        seq, prev = 0, crypto.genesis_hash(keyring.vault_id(conn))
        for rows in row_batches:
            seq, prev = insert_rows(conn, rows, seq, prev)
        blobs.insert_sealed(conn, blob_pairs)
        if head is not None and (head.seq, head.hash) != (seq, prev):
            raise TamperDetected(seq + 1 if head.seq > seq else head.seq, f"the rows end at event {seq} but the head "
                                 f"names event {head.seq}")
        if head is not None:
            conn.execute("INSERT INTO head (id, seq, hash, mac, sig) VALUES (1, ?, ?, ?, ?)",
                         (head.seq, head.hash, head.mac, head.sig))
        if sides is not None:
            _copy_side_tables(sides, conn)
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _copy_side_tables(source: sqlite3.Connection, conn: sqlite3.Connection) -> None:
    """The seal, token and batch rows of `source`, as they are (the same DDL made both tables)."""
    present = {n for (n,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for name, ddl in _SIDE_TABLES.items():
        if name not in present:
            continue
        if ddl is not None:
            conn.execute(ddl)
        rows = source.execute(f"SELECT * FROM {name}").fetchall()
        if rows:
            conn.executemany(f"INSERT INTO {name} VALUES ({','.join('?' * len(rows[0]))})", rows)


def add_rows(path: Path, meta: Mapping[str, Any], blob_rows: Iterable[tuple[bytes, bytes]]) -> None:
    """Put key material (replacing rows of the same name) and sealed attachments (those it lacks) into the
    vault file `path`, in one transaction: another copy's wraps and attachments, under the same data key."""
    conn = schema.connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        keyring.insert_meta(conn, meta)
        blobs.insert_sealed(conn, blob_rows)
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
