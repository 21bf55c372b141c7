"""Checking a vault file: the chain, every AEAD tag, the head, the blobs.

`verify_vault` needs the keys; `verify_blind` needs nothing secret and checks
what an untrusted host can: seqs 1..n with no gap, every chain hash, and that
the head names the last event and carries the vault's signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import blobs, schema
from .errors import TamperDetected
from .log import EventLog


@dataclass(frozen=True)
class Report:
    """What a verification covered; it only exists when everything checked out."""

    events: int
    blobs: int
    blind: bool


def check_log(log: EventLog, *, blind: bool) -> Report:
    """Walk the whole log; raise TamperDetected naming the first bad seq."""
    last_seq, last_hash, last_at = 0, log.genesis, 0
    for seq, prev, stored, payload in log.checked_rows():
        if not blind:
            at = log.decrypt(seq, prev, payload).recorded_at
            if at < last_at:
                raise TamperDetected(seq, "it is recorded earlier than the event before it")
            last_at = at
        last_seq, last_hash = seq, stored
    log.check_head(log.head(), last_seq, last_hash, blind=blind)
    n_blobs = 0
    if not blind:
        assert log.keys is not None
        n_blobs = sum(1 for _ in blobs.check_all_blobs(log.conn, log.keys, log.vault_id))
    return Report(last_seq, n_blobs, blind)


def verify_blind(path: Path | str) -> Report:
    """Check a vault file without its passphrase."""
    path = Path(path)
    conn = schema.connect(path)
    try:
        return check_log(EventLog(conn, path, None), blind=True)
    finally:
        conn.close()
