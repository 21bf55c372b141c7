"""Client batch ids the API has stored, so a retried batch is stored once, even across restarts.

A row per (token name, batch id) in the table `api_batches` of the vault file,
written in the same SQLite transaction as the batch's events: either both are
committed or neither. The key and the body digest are BLAKE2b keyed from the
data key, so the file shows neither the client's ids nor its content; the
stored result holds only record ids, seqs and event names.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from vault.store import schema
from vault.store.crypto import blake2b
from vault.errors import VaultError
from vault.store.log import EventLog, now_us


class BatchIdReused(VaultError):
    http_status = 409

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(f"Batch id {batch_id!r} was already used for a different batch; use a new id for new changes.")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _ids(log: EventLog, token_name: str, batch_id: str, body: Any) -> tuple[bytes, bytes]:
    assert log.keys is not None, "batch ids are keyed with the unlocked vault's keys"
    key = log.keys.api_batch
    row_key = blake2b(token_name.encode() + b"\0" + batch_id.encode(), key=key, person=b"lv-batch-id")
    digest = blake2b(_canonical(body), key=key, person=b"lv-batch-body")
    return row_key, digest


def recall(log: EventLog, token_name: str, batch_id: str, body: Any) -> list[dict[str, Any]] | None:
    """The results stored for this batch, None if it is new; BatchIdReused if the id came with other content.

    Call inside `Vault.transaction()` (on its `log`), so the check and the store are one transaction.
    """
    log.conn.execute(schema.BATCHES_DDL)
    row_key, digest = _ids(log, token_name, batch_id, body)
    row = log.conn.execute("SELECT digest, result FROM api_batches WHERE key = ?", (row_key,)).fetchone()
    if row is None:
        return None
    if not hmac.compare_digest(row[0], digest):
        raise BatchIdReused(batch_id)
    return json.loads(row[1])


def remember(log: EventLog, token_name: str, batch_id: str, body: Any, results: list[dict[str, Any]]) -> None:
    """Store a batch's results; call inside the same `Vault.transaction()` that appended its events."""
    row_key, digest = _ids(log, token_name, batch_id, body)
    log.conn.execute(
        "INSERT INTO api_batches (key, digest, result, stored_at) VALUES (?, ?, ?, ?)",
        (row_key, digest, _canonical(results).decode(), now_us()),
    )
