"""Binary attachments (photos, mail attachments, MMS images), stored once each.

A blob's id is a keyed BLAKE2b of its content, so equal files are stored once
and the id reveals nothing to someone without the key. The content is sealed
with its id in the AAD, so a blob cannot be swapped for another.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Iterator

import nacl.exceptions

from vault.store import codec, crypto
from vault.store.crypto import Keys
from vault.errors import NotFound, TamperDetected


def blob_id(keys: Keys, data: bytes) -> str:
    return crypto.blake2b(data, key=keys.blob_id, person=b"lv-blob-id").hex()


def _aad(vault_id: bytes, bid: bytes) -> bytes:
    return b"lv-blob" + vault_id + bid


def put_blob(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, data: bytes) -> str:
    """Store `data` unless it is already there; returns its id (hex)."""
    bid = blob_id(keys, data)
    raw = bytes.fromhex(bid)
    if conn.execute("SELECT 1 FROM blobs WHERE id = ?", (raw,)).fetchone() is None:
        sealed = crypto.seal(keys.blob, codec.pack(data), _aad(vault_id, raw))
        conn.execute("INSERT INTO blobs (id, payload) VALUES (?, ?)", (raw, sealed))
    return bid


def insert_sealed(conn: sqlite3.Connection, pairs: Iterable[tuple[bytes, bytes]]) -> None:
    """Store attachments sealed elsewhere (a replica's, another copy of the vault's) as they are, (raw id,
    payload) pairs; an id already here keeps its row."""
    conn.executemany("INSERT OR IGNORE INTO blobs (id, payload) VALUES (?, ?)", pairs)


def get_blob(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, bid: str) -> bytes:
    """The content of blob `bid`; NotFound or TamperDetected when it cannot be had."""
    try:
        raw = bytes.fromhex(bid)
    except ValueError as e:
        raise NotFound(bid) from e
    row = conn.execute("SELECT payload FROM blobs WHERE id = ?", (raw,)).fetchone()
    if row is None:
        raise NotFound(bid)
    return _open(keys, vault_id, raw, row[0])


def _open(keys: Keys, vault_id: bytes, raw: bytes, sealed: bytes) -> bytes:
    if type(raw) is not bytes or type(sealed) is not bytes:  # a damaged record header can retype a column
        raise TamperDetected(None, "a blob row holds values that are not byte strings")
    try:
        data = codec.unpack(crypto.open_sealed(keys.blob, sealed, _aad(vault_id, raw)))
    except (nacl.exceptions.CryptoError, ValueError) as e:
        raise TamperDetected(None, f"blob {raw.hex()[:16]}… does not decrypt") from e
    if blob_id(keys, data) != raw.hex():
        raise TamperDetected(None, f"blob {raw.hex()[:16]}… does not match its id")
    return data


def check_all_blobs(conn: sqlite3.Connection, keys: Keys, vault_id: bytes) -> Iterator[str]:
    """Open every blob, raising TamperDetected at the first bad one; yields ids checked."""
    for raw, sealed in conn.execute("SELECT id, payload FROM blobs"):
        _open(keys, vault_id, raw, sealed)
        yield raw.hex()


def blob_ref(bid: str, data: bytes, name: str | None = None, content_type: str | None = None) -> dict[str, Any]:
    """The value a record field holds to point at a blob."""
    ref: dict[str, Any] = {"blob": bid, "size": len(data)}
    if name:
        ref["name"] = name
    if content_type:
        ref["type"] = content_type
    return ref


def referenced_blobs(value: Any) -> Iterator[str]:
    """Every blob id referenced anywhere inside a record's fields."""
    if isinstance(value, dict):
        if isinstance(value.get("blob"), str):
            yield value["blob"]
        for v in value.values():
            yield from referenced_blobs(v)
    elif isinstance(value, list):
        for v in value:
            yield from referenced_blobs(v)


def missing_blobs(conn: sqlite3.Connection, ids: set[str]) -> set[str]:
    """Which of `ids` the blob store does not hold."""
    present: set[str] = set()
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):
        chunk = [bytes.fromhex(b) for b in ordered[i : i + 500]]
        rows = conn.execute(f"SELECT id FROM blobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        present.update(r[0].hex() for r in rows)
    return ids - present
