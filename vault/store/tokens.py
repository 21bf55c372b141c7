"""API bearer tokens: made once, shown once, stored as keyed hashes in the vault file.

A token is `lvt_` + 43 url-safe characters (256 random bits). What is stored,
in the table `api_tokens` of the vault file itself, is a row per token name:

    name, token_hash, created_at, append_only, revoked_at, mac

Why the vault file and not a file under LIFEVAULT_HOME: a token opens the
vault's plaintext through a running server, so it belongs to that vault (not
to a machine that may hold several vaults), travels with copies of the file
(replicas carry only the log and blobs), and is managed with the passphrase. The vault file is designed to
sit on storage we do not trust, so nothing there may grant access unless the
data key vouches for it: `token_hash` is BLAKE2b keyed from the data key (a
row for a token of one's own cannot be made without the key) and `mac` binds
name, hash, creation time and the append-only flag (a flag cannot be flipped).
Revoking clears the hash, so a revoked token matches nothing. The whole table
is bound to the signed head by the seal (seal.py), checked on every lookup: a
row copied back from an older copy of the file (a revocation undone) or any
other edit makes every lookup fail with one sentence, and an older copy of the
whole file is caught by the machine's memory of the highest head (rollback.py).
No plaintext token is ever stored or logged.

It lives in the core, not in `web/`, because any front end that takes tokens
needs the same rules.
"""

from __future__ import annotations

import hmac
import re
import secrets
import sqlite3
import struct
from dataclasses import dataclass

from vault.store import keyring, schema, seal
from vault.store.crypto import Keys, blake2b
from vault.errors import VaultError
from vault.store.log import EventLog, now_us

TOKENS = frozenset({"tokens"})  # what a token write changes beside the log (see seal.py)
TOKEN_PREFIX = "lvt_"
_TOKEN = re.compile(r"^lvt_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BadTokenName(VaultError):
    http_status = 422

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name!r} is not a usable token name (1-64 letters, digits, '.', '_' or '-').")


class TokenNameTaken(VaultError):
    http_status = 409

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A token named {name!r} already exists (revoked names stay taken); pick another name.")


class NoSuchToken(VaultError):
    http_status = 404

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No live token named {name!r}; `lifevault token list` shows them.")


@dataclass(frozen=True)
class Token:
    """A token's public facts: never the token itself."""

    name: str
    created_at: int  # UTC microseconds
    append_only: bool
    revoked_at: int | None = None

    @property
    def can_read(self) -> bool:
        return not self.append_only


def _keys(log: EventLog) -> Keys:
    assert log.keys is not None, "tokens need the unlocked vault's keys"
    return log.keys


def _hash(log: EventLog, token: str) -> bytes:
    return blake2b(token.encode(), key=_keys(log).token_hash, person=b"lv-api-token")


def _mac(log: EventLog, name: str, token_hash: bytes, created_at: int, append_only: bool) -> bytes:
    msg = name.encode() + b"\0" + token_hash + struct.pack(">qB", created_at, int(append_only))
    return blake2b(msg, key=_keys(log).token_mac, person=b"lv-token-row")


def _checked(log: EventLog) -> bool:
    """Whether the vault has a token table, after checking every row against the seal (TamperDetected)."""
    head = log.head()
    seal.check(log.conn, log.vault_id, keyring.verify_key(log.conn), _keys(log), head.seq, head.hash,
               contents=("tokens",))
    return _has_table(log.conn)


def _has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'api_tokens'").fetchone() is not None


def create_token(log: EventLog, name: str, *, append_only: bool = False) -> str:
    """Store a new token under `name`; returns the token, which is never available again."""
    if not _NAME.match(name):
        raise BadTokenName(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_hash = _hash(log, token)
    created = now_us()
    with log.writer(TOKENS):  # BEGIN IMMEDIATE on the vault file: serialised with every other writer
        log.conn.execute(schema.TOKENS_DDL)
        if log.conn.execute("SELECT 1 FROM api_tokens WHERE name = ?", (name,)).fetchone():
            raise TokenNameTaken(name)
        log.conn.execute(
            "INSERT INTO api_tokens (name, token_hash, created_at, append_only, mac) VALUES (?, ?, ?, ?, ?)",
            (name, token_hash, created, int(append_only), _mac(log, name, token_hash, created, append_only)),
        )
    return token


def list_tokens(log: EventLog) -> list[Token]:
    """Every token ever made, live and revoked, by name; TamperDetected if the rows are not as sealed."""
    if not _checked(log):
        return []
    rows = log.conn.execute("SELECT name, created_at, append_only, revoked_at FROM api_tokens ORDER BY name")
    return [Token(name, created, bool(append_only), revoked) for name, created, append_only, revoked in rows]


def revoke_token(log: EventLog, name: str) -> Token:
    """Revoke a live token at once; its name stays in the list (and in history) as revoked."""
    with log.writer(TOKENS):
        log.conn.execute(schema.TOKENS_DDL)
        row = log.conn.execute(
            "SELECT created_at, append_only FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
        ).fetchone()
        if row is None:
            raise NoSuchToken(name)
        revoked = now_us()
        log.conn.execute("UPDATE api_tokens SET token_hash = NULL, revoked_at = ? WHERE name = ?", (revoked, name))
    return Token(name, row[0], bool(row[1]), revoked)


def revoke_all(log: EventLog) -> int:
    """Revoke every token, whatever the rows say: the way out when they no longer match the seal
    (rows whose names were forged stay listed, revoked). Returns how many were live by the rows."""
    with log.writer(TOKENS, repair=True):
        log.conn.execute(schema.TOKENS_DDL)
        live = log.conn.execute("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL").fetchone()[0]
        log.conn.execute("UPDATE api_tokens SET token_hash = NULL, revoked_at = coalesce(revoked_at, ?)", (now_us(),))
    return live


def authenticate(log: EventLog, presented: str) -> Token | None:
    """The live token `presented` is, or None (malformed, unknown, revoked or a forged row);
    TamperDetected, refusing every token, if the rows are not as sealed."""
    if not _TOKEN.match(presented) or not _checked(log):
        return None
    token_hash = _hash(log, presented)
    row = log.conn.execute(
        "SELECT name, created_at, append_only, mac FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    if row is None:
        return None
    name, created, append_only, mac = row
    if not hmac.compare_digest(mac, _mac(log, name, token_hash, created, bool(append_only))):
        return None
    return Token(name, created, bool(append_only))
