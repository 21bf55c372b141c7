"""Encrypted snapshots of the projection, kept in the vault as a cache.

A snapshot is the serialized in-memory projection, compressed and sealed with
AAD binding the vault id, the projection version, its seq and the chain hash
at that seq: a snapshot from another point of the chain, another vault or an
older projection layout does not open and is simply not used. Deleting every
snapshot loses nothing; replay from event 1 gives the same state.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib

import nacl.exceptions

from . import crypto
from .crypto import Keys
from .errors import VaultLocked
from .projection import PROJECTION_VERSION, Projection

KEEP = 2  # snapshots kept; older ones are deleted (they are only a cache)


def _aad(vault_id: bytes, seq: int, chain_hash: bytes) -> bytes:
    return b"lv-snapshot" + vault_id + struct.pack(">QQ", PROJECTION_VERSION, seq) + chain_hash


def save_snapshot(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, projection: Projection, chain_hash: bytes) -> None:
    """Seal the projection (at its seq) into the vault and prune old snapshots."""
    sealed = crypto.seal(keys.snapshot, zlib.compress(projection.to_bytes(), 1), _aad(vault_id, projection.seq, chain_hash))
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO snapshots (seq, payload) VALUES (?, ?)", (projection.seq, sealed))
            conn.execute(
                "DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)", (KEEP,)
            )
    except sqlite3.OperationalError as e:
        raise VaultLocked(path_of(conn)) from e


def path_of(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2]


def latest_snapshot_seq(conn: sqlite3.Connection, upto: int) -> int:
    row = conn.execute("SELECT max(seq) FROM snapshots WHERE seq <= ?", (upto,)).fetchone()
    return row[0] or 0


def load_snapshot(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, upto: int, hash_at) -> Projection | None:
    """The newest usable snapshot at or before `upto`, or None (then replay from zero)."""
    for seq, sealed in conn.execute("SELECT seq, payload FROM snapshots WHERE seq <= ? ORDER BY seq DESC", (upto,)).fetchall():
        try:
            data = zlib.decompress(crypto.open_sealed(keys.snapshot, sealed, _aad(vault_id, seq, hash_at(seq))))
        except (nacl.exceptions.CryptoError, zlib.error):
            continue
        return Projection.from_bytes(data)
    return None
