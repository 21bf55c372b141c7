"""Append many small transactions to a vault, printing each committed event (`seq record_id`) at once.

Used by tests/store/test_durability.py as a separate process it can SIGKILL or run
twice at the same time. Usage:
    LIFEVAULT_PASSPHRASE=... python appender.py VAULT TAG TRANSACTIONS EVENTS_PER_TRANSACTION
It prints `ready`, waits for a line on stdin, then appends.
Every record gets {"title": TAG-i-j, "tag": TAG}; every third transaction also edits an earlier record.
"""

from __future__ import annotations

import os
import sys

from vault import Kind, Source, Vault


def main(path: str, tag: str, transactions: int, per_tx: int) -> None:
    src = Source("import", name="appender", file=tag)
    out = sys.stdout
    with Vault.open(path, os.environ["LIFEVAULT_PASSPHRASE"]) as vault:
        out.write("ready\n")
        out.flush()
        sys.stdin.readline()  # wait for "go" so two appenders really start together
        mine: list[str] = []
        for i in range(transactions):
            with vault.transaction() as tx:
                ids = [tx.create(Kind.NOTE, {"title": f"{tag}-{i}-{j}", "tag": tag}, src, allow_extra=True) for j in range(per_tx)]
                if i % 3 == 2:
                    tx.update(mine[-1], {"edited": i}, src, allow_extra=True)
            # committed: only now report it
            head = vault.projection.seq
            first = head - per_tx - (1 if i % 3 == 2 else 0) + 1
            for seq in range(first, head + 1):
                out.write(f"{seq} {vault.log.event(seq).event.record_id}\n")
            out.flush()
            mine.extend(ids)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
