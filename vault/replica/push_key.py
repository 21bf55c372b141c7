"""The push credential: what `lifevault push` needs to run from cron without the passphrase.

`LIFEVAULT_HOME/push-keys/<vault id>.json` (0600) holds a manifest-signing key
of its own, the vault key's signature vouching for it, and the manifest MAC
key; nothing that opens, writes or signs an event. With it a push can send
the vault's already-sealed rows (whose chain and signed head anyone can check)
and sign the manifest that lists them, and nothing else. Creating a new one
replaces the file; a copy of an old one keeps working until the vault's
signing key changes, so keep the file as private as the vault.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vault.store.crypto import Keys, PushKeys
from vault.errors import VaultError
from vault.paths import home_dir, private_dir, private_file

FORMAT = "lifevault-push-key/1"


class BadPushKey(VaultError):
    http_status = 500


def push_key_path(vault_id: bytes) -> Path:
    return home_dir() / "push-keys" / f"{vault_id.hex()}.json"


def create(vault_id: bytes, keys: Keys) -> Path:
    """Write a new push credential for this vault (replacing any), 0600; returns its path."""
    pk = keys.delegate_push()
    path = push_key_path(vault_id)
    private_dir(path.parent)
    tmp = private_file(path.with_suffix(".tmp"))
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "vault_id": vault_id.hex(), "seed": pk.seed.hex(), "manifest_key": pk.manifest.hex(),
                   "vault_verify_key": pk.vault_verify_key.hex(), "delegation": pk.delegation.hex()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(vault_id: bytes, verify_key: bytes) -> PushKeys | None:
    """This vault's push credential, or None when there is none; BadPushKey when it is damaged or another key's."""
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
    return pk
