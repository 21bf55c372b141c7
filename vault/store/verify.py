"""Checking a vault file: SQLite's structure, the chain, every AEAD tag, the head, the seal, the blobs,
and this machine's memory of the highest head.

`verify_vault` needs the keys; `verify_blind` needs nothing secret and checks
what an untrusted host can: SQLite's integrity check, seqs 1..n with no gap,
every chain hash, that the head names the last event and carries the vault's
signature, and that the signed seal matches the token rows, the key material
and every attachment's ciphertext. `check_log` alone is the log's part (a
replica rebuilt into a file has no tokens and no seal yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vault.store import blobs, keyring, rollback, schema, seal
from vault.store.blobs import referenced_blobs
from vault.store.codec import fields_json
from vault.store.crypto import key_fingerprint
from vault.errors import RolledBack, TamperDetected
from vault.store.log import EventLog


@dataclass(frozen=True)
class Report:
    """What a verification covered; it only exists when everything checked out."""

    events: int
    blobs: int
    blind: bool


def check_log(log: EventLog, *, blind: bool, progress: Callable[[int], None] | None = None) -> Report:
    """Walk the whole log; raise TamperDetected naming the first bad seq. `progress(n)` hears of every n events."""
    last_seq, last_hash, last_at = 0, log.genesis, 0
    first_use: dict[str, int] = {}  # blob id -> the first seq that references it
    for seq, prev, stored, payload in log.checked_rows():
        if progress and seq % 1000 == 0:
            progress(1000)
        if not blind:
            r = log.decrypt(seq, prev, payload)
            if r.recorded_at < last_at:
                raise TamperDetected(seq, "it is recorded earlier than the event before it")
            last_at = r.recorded_at
            if '"blob"' in fields_json(r.event.changes):  # parse only the events that can reference one
                for bid in referenced_blobs(dict(r.event.changes)):
                    first_use.setdefault(bid, seq)
        last_seq, last_hash = seq, stored
    log.check_head(log.head(), last_seq, last_hash, blind=blind)
    n_blobs = 0
    if not blind:
        assert log.keys is not None
        missing = blobs.missing_blobs(log.conn, set(first_use))
        if missing:
            bid = min(missing, key=first_use.__getitem__)
            raise TamperDetected(first_use[bid], f"the attachment it references ({bid[:16]}…) is missing")
        n_blobs = sum(1 for _ in blobs.check_all_blobs(log.conn, log.keys, log.vault_id))
    return Report(last_seq, n_blobs, blind)


def verify_vault(log: EventLog, progress: Callable[[int], None] | None = None, *,
                 behind: rollback.Behind | None = None) -> Report:
    """Everything `lifevault verify` checks with the passphrase, on an unlocked log; `behind` is what opening
    the vault found of this machine's memory of its head (`Vault.rollback`). The first problem is raised as
    one sentence (DamagedFile, TamperDetected or RolledBack)."""
    schema.check_structure(log.conn, log.path)
    report = check_log(log, blind=False, progress=progress)
    head = log.head()
    seal.check(log.conn, log.vault_id, keyring.verify_key(log.conn), log.keys, head.seq, head.hash, attachments=True)
    schema.check_schema(log.conn, log.path)  # after the content checks, which name a tampered seq
    if behind is not None:
        raise RolledBack(log.path, behind.reason)
    return report


def verify_blind(path: Path | str, progress: Callable[[int], None] | None = None, *,
                 expected_key: str | None = None) -> Report:
    """Check a vault file without its passphrase. Whoever can rewrite the file can also replace its
    signing key, so pass the fingerprint you know (`expected_key`) to pin it."""
    path = Path(path)
    conn = schema.connect(path)
    try:
        schema.check_structure(conn, path)
        if expected_key is not None:
            found = key_fingerprint(keyring.verify_key(conn))
            if found.upper() != expected_key.strip().upper():
                raise TamperDetected(None, f"its signing key has fingerprint {found}, not the expected {expected_key}")
        log = EventLog(conn, path, None)
        report = check_log(log, blind=True, progress=progress)
        head = log.head()
        sealed = seal.check(conn, log.vault_id, keyring.verify_key(conn), None, head.seq, head.hash, attachments=True)
        schema.check_schema(conn, path)
        behind = rollback.check(path, log.vault_id, head.seq, sealed.counter, log.hash_at)
        if behind is not None:
            raise RolledBack(path, behind.reason)
        return Report(report.events, sealed.blob_count, blind=True)
    finally:
        conn.close()


def count_events(path: Path | str) -> int:
    """How many events a vault file holds, read without the passphrase (for progress bars)."""
    conn = schema.connect(Path(path))
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
