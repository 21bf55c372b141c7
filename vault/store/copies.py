"""A vault file made from another copy's raw rows, nothing decrypted: a replica's (clone, a full replica
check, `pull --fork`), byte for byte the rows of the vault that pushed them.

The rows go in through `log.insert_rows`, the same checked way a pull appends them: seqs from 1 with no
gap, every chain hash from the vault id's genesis, and a head that names the last row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping

from vault.errors import TamperDetected
from vault.store import blobs, crypto, keyring, schema
from vault.store.log import Head, Row, insert_rows


def build_file(path: Path, meta: Mapping[str, Any], row_batches: Iterable[Iterable[Row]],
               blob_pairs: Iterable[tuple[bytes, bytes]], head: Head | None) -> None:
    """Create the vault file `path` from its key material (`meta` rows), its event rows (in batches, in seq
    order), its sealed attachments and its signed head (None for a vault without events). TamperDetected
    when the rows do not chain up to the head; sqlite3 errors pass through for the caller to name."""
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
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


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
