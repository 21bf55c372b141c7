"""The seal: what lies beside the log in a vault file, bound to its signed head.

The log is chained and its head signed, but three things sit beside it: the API
token rows, the key material in `meta` (vault id, wrapped keys, KDF settings,
public key) and the attachments. The one-row `seal` table binds a digest of each
to the head (seq, hash) with a counter raised at every write, a MAC under a
data-key subkey and the vault's Ed25519 signature. So a token row copied from an
older copy of the file, or a flipped bit in the recovery wrap, no longer matches
(checked on every open, write and token lookup), and `verify --blind` covers
tokens, key material and every attachment's ciphertext without the passphrase.

An older copy of the whole file is self-consistent, seal included: the counter
is what the machine's memory of the highest head (`rollback.py`) compares.
A write re-derives only the digests of what it changed (tokens, keys), after
checking the old ones against the rows; the others are carried over, so damage
is reported until repaired, never sealed in, and never blocks unrelated writes.
The attachment set is carried over and added to, never recomputed (blobs are
append-only, and a temporary trigger lists the ones a write adds).
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from vault.store import blobs, crypto, schema
from vault.store.crypto import Keys
from vault.errors import TamperDetected

# The meta rows that hold key material (and which push keys may sign manifests); anything else a later version
# stores in meta is not secret-bearing. A row added here changes no existing seal until it is first written.
KEY_ROWS = ("kdf", "push_keys", "vault_id", "verify_key", "wrapped_pass", "wrapped_recovery")
TOKEN_TABLE = "api_tokens"


@dataclass(frozen=True)
class Seal:
    seq: int
    hash: bytes
    counter: int
    tokens: bytes
    keys: bytes
    blob_count: int
    blob_set: bytes
    mac: bytes
    sig: bytes

    def message(self, vault_id: bytes) -> bytes:
        return crypto.seal_message(vault_id, self.seq, self.hash, self.counter, self.tokens, self.keys,
                                   self.blob_count, self.blob_set)


def read(conn: sqlite3.Connection) -> Seal | None:
    """The seal row; None for an unsealed file (format 1, or just rebuilt from a replica)."""
    try:
        row = conn.execute("SELECT seq, hash, counter, tokens, keys, blob_count, blob_set, mac, sig "
                           "FROM seal WHERE id = 1").fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    if row is None:
        return None
    if not all(isinstance(v, bytes) for v in (row[1], *row[3:5], *row[6:])):
        raise TamperDetected(None, "its seal row holds values of the wrong type")
    return Seal(*row)


def _digest(rows: list[tuple[Any, ...]], person: bytes) -> bytes:
    """A digest of rows exactly as stored: type and value of every column, in the order given."""
    canon = [[[type(v).__name__, v.hex() if isinstance(v, bytes) else v] for v in row] for row in rows]
    return crypto.blake2b(json.dumps(canon, separators=(",", ":")).encode(), person=person)


def tokens_digest(conn: sqlite3.Connection) -> bytes:
    """Every column of every token row, by name (no table: no rows)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TOKEN_TABLE,)).fetchone()
    rows = conn.execute(f"SELECT * FROM {TOKEN_TABLE} ORDER BY name").fetchall() if exists else []
    return _digest(rows, b"lv-seal-tokens")


def key_material_digest(conn: sqlite3.Connection) -> bytes:
    marks = ",".join("?" * len(KEY_ROWS))
    rows = conn.execute(f"SELECT key, value FROM meta WHERE key IN ({marks}) ORDER BY key", KEY_ROWS).fetchall()
    return _digest(rows, b"lv-seal-keys")


def blob_set(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """(count, multiset hash) of every stored attachment, read in full."""
    count, total, batch = 0, crypto.EMPTY_BLOB_SET, []
    for bid, payload in blobs.sealed_rows(conn):
        batch.append((bid, payload))
        if len(batch) == 256:
            total, count, batch = crypto.blob_set_add(total, batch), count + len(batch), []
    return count + len(batch), crypto.blob_set_add(total, batch)


def track_new_blobs(conn: sqlite3.Connection) -> None:
    """List, on this connection only, the blobs a write adds (however it adds them), for `write`."""
    for statement in schema.TRACK_NEW_BLOBS:
        conn.execute(statement)


def write(conn: sqlite3.Connection, keys: Keys, vault_id: bytes, seq: int, last_hash: bytes,
          reseal: frozenset[str] = frozenset()) -> Seal:
    """Seal head (seq, hash) inside the caller's write transaction. The digests named in `reseal`
    ("tokens", "keys": what this write changed) are taken from the rows; the others are carried over
    from the old seal, so damage found later is still reported, never sealed in. A file with no seal
    yet is sealed as it stands."""
    old = read(conn)
    if old is None:
        count, bset = blob_set(conn)
        counter, tokens, key_material = 1, tokens_digest(conn), key_material_digest(conn)
    else:
        new_ids = [bid for (bid,) in conn.execute("SELECT DISTINCT id FROM lv_new_blobs").fetchall()]
        added = list(blobs.sealed_payloads(conn, new_ids).items())
        count, bset, counter = old.blob_count + len(added), crypto.blob_set_add(old.blob_set, added), old.counter + 1
        tokens = tokens_digest(conn) if "tokens" in reseal else old.tokens
        key_material = key_material_digest(conn) if "keys" in reseal else old.keys
    conn.execute("DELETE FROM lv_new_blobs")
    msg = crypto.seal_message(vault_id, seq, last_hash, counter, tokens, key_material, count, bset)
    new = Seal(seq, last_hash, counter, tokens, key_material, count, bset, keys.seal_mac(msg), keys.sign(msg))
    conn.execute("INSERT OR REPLACE INTO seal (id, seq, hash, counter, tokens, keys, blob_count, blob_set, mac, sig) "
                 "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (new.seq, new.hash, new.counter, new.tokens, new.keys, new.blob_count, new.blob_set, new.mac, new.sig))
    return new


def check_key_material(conn: sqlite3.Connection, vault_id: bytes, verify_key: bytes) -> None:
    """When unlocking failed: TamperDetected if the key material is not what the signed seal records, so a
    damaged vault id or wrapped key is named as damage, not as a wrong secret (an unsealed file skips this)."""
    seal = read(conn)
    if seal is None:
        return
    if not crypto.check_signature(verify_key, seal.message(vault_id), seal.sig):
        raise TamperDetected(None, "its seal's signature does not verify (the seal, or the vault id or signing key in "
                                   "the meta table, is damaged or altered)")
    if key_material_digest(conn) != seal.keys:
        raise TamperDetected(None, KEYS_DIFFER)


KEYS_DIFFER = ("its key material in the meta table (vault id, wrapped passphrase or recovery key, KDF settings) "
               "differs from what its seal records: damaged or altered")
TOKENS_DIFFER = ("its API token rows differ from what its seal records (altered, added, removed, or copied from an older "
                 "copy of the file), so no token is accepted; `lifevault token revoke --all` revokes them all")


def check(conn: sqlite3.Connection, vault_id: bytes, verify_key: bytes, keys: Keys | None, seq: int,
          last_hash: bytes, *, contents: tuple[str, ...] = ("keys", "tokens"), attachments: bool = False,
          signature: bool = True) -> Seal:
    """TamperDetected unless the seal is authentic (signature unless not asked; MAC too with `keys`), names head
    (seq, hash), and matches the rows named in `contents` and (with `attachments`, reading every blob) the
    attachments."""
    seal = read(conn)
    if seal is None:
        raise TamperDetected(None, "it has no seal over its tokens, keys and attachments (made by an older lifevault "
                                   "or rebuilt from a replica: open it once with the passphrase to add one)")
    msg = seal.message(vault_id)
    if signature and not crypto.check_signature(verify_key, msg, seal.sig):
        raise TamperDetected(None, "its seal's signature does not verify")
    if keys is not None and not hmac.compare_digest(keys.seal_mac(msg), seal.mac):
        raise TamperDetected(None, "its seal's MAC does not verify")
    if (seal.seq, seal.hash) != (seq, last_hash):
        raise TamperDetected(None, f"its seal was made at event {seal.seq}, not at its head (event {seq})")
    if "keys" in contents and key_material_digest(conn) != seal.keys:
        raise TamperDetected(None, KEYS_DIFFER)
    if "tokens" in contents and tokens_digest(conn) != seal.tokens:
        raise TamperDetected(None, TOKENS_DIFFER)
    if attachments:
        count, bset = blob_set(conn)
        if count != seal.blob_count:
            raise TamperDetected(None, f"it stores {count} attachments but its seal records {seal.blob_count} "
                                       "(a blob row deleted or added)")
        if bset != seal.blob_set:
            raise TamperDetected(None, "an attachment's ciphertext differs from what its seal records (a blob altered "
                                       "or swapped)")
        if stray := blobs.stray_parts(conn):
            raise TamperDetected(None, f"its blob store holds {stray} parts that belong to no attachment (added, or "
                                       "left by a deleted blob row)")
    return seal
