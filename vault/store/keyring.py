"""The vault's key material in the `meta` table: create, unlock, rewrap.

Stored: the vault id, the Argon2id parameters, the data key wrapped by the
passphrase key and by the recovery key, and the public head-signing key. The
KDF parameters are bound into the passphrase wrap's AAD, so altering them
makes unlocking fail rather than silently weakening the key. All of it is
covered by the signed seal (seal.py): when a secret does not unwrap, the rows
are checked against it, so damage is named as damage and "wrong passphrase"
is said only when they are intact.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import nacl.utils

from vault.store import crypto, seal
from vault.store.crypto import KdfParams, Keys
from vault.errors import TamperDetected, WrongSecret

VAULT_ID_BYTES = 16


def _get(conn: sqlite3.Connection, key: str) -> bytes:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise TamperDetected(None, f"its meta table has no {key} row")
    value = row[0]
    if not isinstance(value, (str, bytes)):
        raise TamperDetected(None, f"its meta row {key} holds a value of the wrong type")
    return value.encode() if isinstance(value, str) else value


def _set(conn: sqlite3.Connection, key: str, value: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def insert_meta(conn: sqlite3.Connection, rows: Mapping[str, Any]) -> None:
    """Key material as another copy of the vault holds it (rows of the same name are replaced)."""
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sorted(rows.items()))


def _pass_aad(vault_id: bytes, kdf_json: bytes) -> bytes:
    return b"lv-wrap-pass" + vault_id + kdf_json


def _recovery_aad(vault_id: bytes) -> bytes:
    return b"lv-wrap-recovery" + vault_id


def vault_id(conn: sqlite3.Connection) -> bytes:
    return _get(conn, "vault_id")


def verify_key(conn: sqlite3.Connection) -> bytes:
    return _get(conn, "verify_key")


PUSH_KEYS_ROW = "push_keys"  # the push keys this vault vouched for, and when each was revoked (replica/push_key.py)


def push_key_list(conn: sqlite3.Connection) -> bytes | None:
    """The raw list of push keys this vault issued; None for a vault that never registered one."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PUSH_KEYS_ROW,)).fetchone()
    return None if row is None else (row[0].encode() if isinstance(row[0], str) else row[0])


def set_push_key_list(conn: sqlite3.Connection, value: bytes) -> None:
    """Inside a writer that reseals "keys": the row is key material the seal covers."""
    _set(conn, PUSH_KEYS_ROW, value)


def create_keys(conn: sqlite3.Connection, passphrase: str, kdf_cost: str) -> tuple[Keys, str]:
    """Write fresh key material; returns the keys and the recovery key to show once."""
    vid = nacl.utils.random(VAULT_ID_BYTES)
    keys = Keys(nacl.utils.random(crypto.KEY_BYTES))
    recovery = crypto.new_recovery_key()
    _set(conn, "vault_id", vid)
    _set(conn, "verify_key", keys.verify_key)
    _set(conn, "wrapped_recovery", crypto.wrap_data_key(crypto.recovery_kek(recovery, vid), keys.data_key, _recovery_aad(vid)))
    set_passphrase(conn, keys, passphrase, kdf_cost)
    return keys, recovery


def set_passphrase(conn: sqlite3.Connection, keys: Keys, passphrase: str, kdf_cost: str) -> None:
    """Rewrap the data key under a new passphrase (events are not re-encrypted)."""
    vid = vault_id(conn)
    params = KdfParams.new(kdf_cost)
    kdf_json = params.to_json().encode()
    wrapped = crypto.wrap_data_key(params.derive(passphrase), keys.data_key, _pass_aad(vid, kdf_json))
    _set(conn, "kdf", kdf_json)
    _set(conn, "wrapped_pass", wrapped)


def unlock(conn: sqlite3.Connection, passphrase: str) -> Keys:
    """The vault's keys from its passphrase; WrongSecret otherwise."""
    vid, kdf_json = vault_id(conn), _get(conn, "kdf")
    try:
        kek = KdfParams.from_json(kdf_json.decode()).derive(passphrase)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:  # nacl's own errors subclass these
        raise TamperDetected(None, "its key-derivation parameters are damaged or out of range") from e
    with _damage_named(conn, vid):
        data_key = crypto.unwrap_data_key(kek, _get(conn, "wrapped_pass"), _pass_aad(vid, kdf_json), "passphrase")
    return _checked(conn, data_key)


def unlock_with_recovery(conn: sqlite3.Connection, recovery_key: str) -> Keys:
    """The vault's keys from its recovery key; WrongSecret otherwise."""
    vid = vault_id(conn)
    kek = crypto.recovery_kek(recovery_key, vid)
    with _damage_named(conn, vid):
        data_key = crypto.unwrap_data_key(kek, _get(conn, "wrapped_recovery"), _recovery_aad(vid), "recovery key")
    return _checked(conn, data_key)


@contextmanager
def _damage_named(conn: sqlite3.Connection, vid: bytes) -> Iterator[None]:
    """A secret that does not unwrap is wrong only if the key material is as the signed seal records;
    otherwise the damage is what to report."""
    try:
        yield
    except WrongSecret:
        seal.check_key_material(conn, vid, verify_key(conn))
        raise


def _checked(conn: sqlite3.Connection, data_key: bytes) -> Keys:
    keys = Keys(data_key)
    if keys.verify_key != verify_key(conn):
        raise TamperDetected(None, "the stored head-signing key does not belong to this vault")
    return keys
