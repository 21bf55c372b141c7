"""Push a vault to replicas named on stdin, one line each, printing one result line per push.

Used by tests/replica/test_replica_race.py as one of two real processes (two "machines",
each with its own LIFEVAULT_HOME) pushing at the same moment. Usage:
    LIFEVAULT_HOME=... LIFEVAULT_PASSPHRASE=... python pusher_proc.py VAULT
Prints `ready`, then for each replica name read: `Pushed <head hash hex>` or `Failed <one sentence>`.
"""

from __future__ import annotations

import os
import sys

from vault import Vault
from vault.errors import VaultError
from vault.replica import push


def main(path: str) -> None:
    with Vault.open(path, os.environ["LIFEVAULT_PASSPHRASE"]) as vault:
        print("ready", flush=True)
        for line in sys.stdin:
            try:
                push(vault.log, line.strip())
                print(f"Pushed {vault.log.head().hash.hex()}", flush=True)
            except VaultError as e:
                print(f"Failed {e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
