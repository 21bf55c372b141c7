"""Binary attachments (photos, mail attachments, MMS images), stored once each.

A blob's id is a keyed BLAKE2b of its content, so equal files are stored once
and the id reveals nothing to someone without the key. The content is sealed
with its id in the AAD, so a blob cannot be swapped for another.

From format 3 the sealed bytes are stored in parts of PART_BYTES (`blob_parts`,
in the order they were added) and the blob's own row holds an empty payload;
blobs stored before stay whole in their row. Everything that reads sealed
attachments (the seal, replicas, copies) gets them joined through this module,
so a vault and its replicas agree byte for byte whatever their format.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Iterator

import nacl.exceptions

from vault.store import codec, crypto, schema
from vault.store.crypto import Keys
from vault.errors import NotFound, TamperDetected


def blob_id(keys: Keys, data: bytes) -> str:
    return crypto.blake2b(data, key=keys.blob_id, person=b"lv-blob-id").hex()


def _aad(vault_id: bytes, bid: bytes) -> bytes:
    return b"lv-blob" + vault_id + bid


# 4,000 bytes and a part's row overhead fill a 4 KB page once, a 32 KB one 8 times and a 64 KB one 16 times.
PART_BYTES = 4000


def put_blob(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, data: bytes) -> str:
    """Store `data` unless it is already there; returns its id (hex)."""
    bid = blob_id(keys, data)
    raw = bytes.fromhex(bid)
    if conn.execute("SELECT 1 FROM blobs WHERE id = ?", (raw,)).fetchone() is None:
        insert_sealed(conn, [(raw, crypto.seal(keys.blob, codec.pack(data), _aad(vault_id, raw)))])
    return bid


def insert_sealed(conn: sqlite3.Connection, pairs: Iterable[tuple[bytes, bytes]]) -> None:
    """Store attachments sealed elsewhere (a replica's, another copy of the vault's) as they are, (raw id,
    sealed payload) pairs, in parts in a file of format 3 or later; an id already here keeps its row."""
    if schema.format_of(conn) < schema.PARTS_FROM:
        conn.executemany("INSERT OR IGNORE INTO blobs (id, payload) VALUES (?, ?)", pairs)
        return
    for raw, sealed in pairs:
        if conn.execute("INSERT OR IGNORE INTO blobs (id, payload) VALUES (?, x'')", (raw,)).rowcount:
            conn.executemany("INSERT INTO blob_parts (id, part) VALUES (?, ?)",
                             ((raw, sealed[i:i + PART_BYTES]) for i in range(0, len(sealed), PART_BYTES)))


def sealed_payloads(conn: sqlite3.Connection, ids: Iterable[bytes]) -> dict[bytes, bytes]:
    """The sealed bytes of those attachments of `ids` (raw) stored here, as stored, parts joined."""
    found = {}
    for raw in ids:
        row = conn.execute("SELECT payload FROM blobs WHERE id = ?", (raw,)).fetchone()
        if row is not None:
            parts = _parts(conn, raw, row[0])
            found[raw] = parts[0] if len(parts) == 1 else b"".join(parts)  # a retyped value is left for `_open`
    return found


def sealed_rows(conn: sqlite3.Connection) -> Iterator[tuple[bytes, bytes]]:
    """Every stored attachment as (raw id, sealed payload), parts joined; TamperDetected for a row that does not
    hold byte strings."""
    for raw, stored in conn.execute("SELECT id, payload FROM blobs"):
        if type(raw) is not bytes or type(stored) is not bytes:  # a damaged record header can retype a column
            raise TamperDetected(None, "a blob row holds values that are not byte strings")
        yield raw, b"".join(_parts(conn, raw, stored))


def stray_parts(conn: sqlite3.Connection) -> int:
    """How many stored parts belong to no attachment (added, or left by a deleted blob row): none in a file
    lifevault wrote."""
    if schema.format_of(conn) < schema.PARTS_FROM:
        return 0
    return conn.execute("SELECT count(*) FROM blob_parts WHERE id NOT IN (SELECT id FROM blobs WHERE payload = x'')"
                        ).fetchone()[0]


def _parts(conn: sqlite3.Connection, raw: bytes, stored: bytes) -> list[bytes]:
    """A blob row's payload, or (empty, format 3 and later) its parts in the order they were stored."""
    if type(stored) is not bytes or stored != b"" or schema.format_of(conn) < schema.PARTS_FROM:
        return [stored]
    parts = [p for (p,) in conn.execute("SELECT part FROM blob_parts WHERE id = ? ORDER BY n", (raw,))]
    if any(type(p) is not bytes for p in parts):
        raise TamperDetected(None, f"blob {raw.hex()[:16]}… has a part that is not a byte string")
    return parts


def get_blob(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, bid: str) -> bytes:
    """The content of blob `bid`; NotFound or TamperDetected when it cannot be had."""
    try:
        raw = bytes.fromhex(bid)
    except ValueError as e:
        raise NotFound(bid) from e
    sealed = sealed_payloads(conn, [raw]).get(raw)
    if sealed is None:
        raise NotFound(bid)
    return _open(keys, vault_id, raw, sealed)


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
    for raw, sealed in sealed_rows(conn):
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
