"""Whether a passphrase opens a vault: what passphrase and key tests ask after every change."""

from __future__ import annotations

from pathlib import Path

from vault import Vault
from vault.errors import WrongSecret


def opens_with(path: Path, passphrase: str) -> bool:
    try:
        Vault.open(path, passphrase).close()
        return True
    except WrongSecret:
        return False
