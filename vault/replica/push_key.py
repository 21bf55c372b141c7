"""The push credential: what `lifevault push` needs to run from cron without the passphrase.

`LIFEVAULT_HOME/push-keys/<vault id>.json` (0600) holds a manifest-signing key
of its own, the vault key's signature vouching for it, and the manifest MAC
key; nothing that opens, writes or signs an event. With it a push can send
the vault's already-sealed rows (whose chain and signed head anyone can check)
and sign the manifest that lists them, and nothing else.

The vault lists every push key it issued (a `push_keys` row in meta, under the
seal, carried to replicas in every manifest) with when it was revoked. Once a
vault lists one, a manifest signed by a push key it does not list, or lists as
revoked, is refused wherever that list is known: by the vault (push, pull,
status, verify) and, through the manifest's own copy, by a blind reader. A
revoked credential no longer pushes; a replica whose manifest it signed is
checked row by row and signed anew by the next push from the vault. Vaults
that never listed a key (credentials made before the list existed) accept any
key the vault vouched for, as before.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from vault.store import keyring
from vault.store.crypto import PushKeys, key_fingerprint
from vault.errors import VaultError
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us
from vault.paths import home_dir, private_dir, private_file

FORMAT = "lifevault-push-key/1"


class BadPushKey(VaultError):
    http_status = 500


class UnknownPushKey(VaultError):
    http_status = 404


def push_key_path(vault_id: bytes) -> Path:
    return home_dir() / "push-keys" / f"{vault_id.hex()}.json"


@dataclass(frozen=True)
class IssuedKey:
    """A push key as the vault lists it."""

    key: bytes
    created_at: str
    revoked_at: str | None

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key)


Issued = dict[bytes, IssuedKey]


def _parse(raw: bytes | str | None) -> Issued | None:
    if raw is None:
        return None
    try:
        entries = json.loads(raw)
        return {bytes.fromhex(e["key"]): IssuedKey(bytes.fromhex(e["key"]), str(e["created_at"]), e.get("revoked_at"))
                for e in entries}
    except (ValueError, KeyError, TypeError) as e:
        raise BadPushKey(f"The vault's list of push keys cannot be read ({type(e).__name__}).") from e


def issued(conn: sqlite3.Connection) -> Issued | None:
    """The push keys this vault issued; None when it never listed one (any key it vouched for may push)."""
    return _parse(keyring.push_key_list(conn))


def issued_in(meta: Mapping[str, bytes | str]) -> Issued | None:
    """The same list as a manifest carries it (its copy of the vault's meta rows)."""
    return _parse(meta.get(keyring.PUSH_KEYS_ROW))


def refusal(listed: Issued | None, signer: bytes) -> str | None:
    """Why a manifest signed by push key `signer` is not to be trusted under this list, or None."""
    if listed is None:
        return None
    entry = listed.get(signer)
    if entry is None:
        return (f"push key {key_fingerprint(signer)}, which this vault does not list (revoked with "
                "`push-key revoke --all`, or made before the vault listed its push keys)")
    if entry.revoked_at:
        return f"push key {entry.fingerprint}, revoked at {entry.revoked_at}"
    return None


def _store(log: EventLog, listed: Issued) -> None:
    body = json.dumps([{"key": e.key.hex(), "created_at": e.created_at, "revoked_at": e.revoked_at}
                       for e in sorted(listed.values(), key=lambda e: e.created_at)]).encode()
    with log.writer(reseal=frozenset({"keys"})):
        keyring.set_push_key_list(log.conn, body)


def create(log: EventLog) -> Path:
    """Write a new push credential for this vault (replacing any), 0600, and list its key in the vault; returns
    its path. Keys made earlier stay valid until revoked."""
    assert log.keys is not None, "vouching for a push key needs the vault's keys"
    pk = log.keys.delegate_push()
    listed = issued(log.conn) or {}
    listed[pk.verify_key] = IssuedKey(pk.verify_key, iso(now_us()), None)
    _store(log, listed)  # listed first: a credential the vault does not list would be refused
    path = push_key_path(log.vault_id)
    private_dir(path.parent)
    tmp = private_file(path.with_suffix(".tmp"))
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "vault_id": log.vault_id.hex(), "seed": pk.seed.hex(),
                   "manifest_key": pk.manifest.hex(), "vault_verify_key": pk.vault_verify_key.hex(),
                   "delegation": pk.delegation.hex()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def revoke(log: EventLog, fingerprints: list[str], every: bool = False) -> list[IssuedKey]:
    """Mark push keys revoked (by fingerprint, or `every` one the vault lists); once the vault lists keys, an
    unlisted one (made before the list existed) is refused too. Returns the keys revoked now."""
    listed = issued(log.conn) or {}
    wanted = {f.strip().upper() for f in fingerprints}
    unknown = wanted - {e.fingerprint for e in listed.values()}
    if unknown:
        raise UnknownPushKey(f"This vault lists no push key {sorted(unknown)[0]}; `lifevault replica push-key list` "
                       "shows them.")
    now = iso(now_us())
    hit = [e for e in listed.values() if not e.revoked_at and (every or e.fingerprint in wanted)]
    for e in hit:
        listed[e.key] = IssuedKey(e.key, e.created_at, now)
    _store(log, listed)  # written even when empty: from now on only listed keys may push
    return hit


def listed_keys(conn: sqlite3.Connection) -> list[IssuedKey]:
    """Every push key the vault lists, oldest first."""
    return sorted((issued(conn) or {}).values(), key=lambda e: e.created_at)


def load(vault_id: bytes, verify_key: bytes, listed: Issued | None = None) -> PushKeys | None:
    """This vault's push credential, or None when there is none; BadPushKey when it is damaged, another key's,
    or revoked in `listed` (the vault's list of push keys)."""
    path = push_key_path(vault_id)
    try:
        d = json.loads(path.read_text())
        pk = PushKeys(bytes.fromhex(d["seed"]), bytes.fromhex(d["manifest_key"]), bytes.fromhex(d["vault_verify_key"]),
                      bytes.fromhex(d["delegation"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadPushKey(f"The push credential {path} cannot be read ({type(e).__name__}); create it again with "
                         "`lifevault replica push-key create`.") from e
    if d.get("vault_id") != vault_id.hex() or pk.vault_verify_key != verify_key:
        raise BadPushKey(f"The push credential {path} belongs to another key of this vault; create it again with "
                         "`lifevault replica push-key create`.")
    if (why := refusal(listed, pk.verify_key)) is not None:
        raise BadPushKey(f"The push credential {path} holds {why}, so it may no longer push; create a new one with "
                         "`lifevault replica push-key create` where the passphrase is at hand.")
    return pk
