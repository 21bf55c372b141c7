"""Keeping both histories when a replica holds another one (`lifevault pull --fork NAME`).

A fork happens when a vault restored from an older copy (or a second clone of
a replica) gains events while the replica gained others. The replica's
history is never rewritten (other vaults may have cloned it); instead:

1. a new vault file is built from the replica's rows, exactly as they are;
2. the vault's own events after the fork point are applied on top of it, in
   their order, as new events with the source `fork` (naming the replica, the
   event's old seq and its old source), together with the attachments they use;
3. the new file is checked in full, then takes the vault's name; the vault
   file as it was is kept beside it (`<name>.before-fork-<time>`).

A change is re-applied as the change it made to its record: a field both
histories changed ends with the vault's value, a record deleted on the replica
that the vault changed comes back, and a change the replica already holds
adds nothing. The result continues the replica's chain, so `push` then only
appends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.store import blobs, copies, keyring, schema
from vault.state import file as state_file
from vault.domain.events import Event, EventType, Recorded, Source, apply_patch, diff
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us
from vault.vault import Transaction, Vault
from vault.store.verify import check_log
from vault.replica import push_key, registry
from vault.replica.compare import relation
from vault.replica.errors import ReplicaError
from vault.replica.reader import build_vault_file, open_replica, require_manifest
from vault.replica.targets import target_for


@dataclass(frozen=True)
class ForkResult:
    name: str
    fork_at: int  # the first event where the histories parted
    replica_events: int  # the replica's events from fork_at on, now in the vault
    reapplied: int  # the vault's own events from fork_at on that changed something again
    head_seq: int
    kept: Path  # the vault file as it was
    stranded: tuple[str, ...] = ()  # other replicas that hold the vault's old events past the fork point


def pull_fork(vault: Vault, name: str) -> ForkResult:
    """Make the vault hold replica `name`'s history plus its own events after the fork; closes `vault`
    (its file is replaced; the old one is kept beside it). ReplicaError when the replica is not a fork."""
    log, path = vault.log, vault.path
    rep = registry.get(log.vault_id, name)
    where = f"Replica {name} ({rep.target})"
    opened = open_replica(target_for(rep.target), where, (log.vault_id, keyring.verify_key(log.conn)),
                          issued=push_key.issued(log.conn))
    m = require_manifest(opened)
    rel = relation(log, opened)
    if not rel.forked:
        raise ReplicaError(f"{where} does not hold another history (it ends at event {rel.replica_seq}, this vault at "
                           f"event {rel.vault_seq}); use `lifevault pull {name}` or `lifevault push {name}`.")
    m.check_mac(vault.keys, where)
    fork_at = rel.fork_at or 1
    stranded = _stranded(log, name, fork_at)
    mine = list(log.read(fork_at - 1, rel.vault_seq))
    meta = dict(log.conn.execute("SELECT key, value FROM meta"))  # the wraps this vault unlocks with today
    tmp = path.with_name(f".{path.name}.{os.getpid()}.forking")
    try:
        tmp.unlink(missing_ok=True)  # left by a run that was killed
        with opened.target.local_copy([s.name for s in m.segments]) as folder:
            build_vault_file(tmp, m, folder, where)
        _copy_rows(vault, tmp, meta)
        conn = schema.connect(tmp)
        try:
            new = Vault(tmp, conn, vault.keys)
        except BaseException:
            conn.close()
            raise
        try:
            reapplied = _reapply(new, mine, fork_at, name)
            check_log(new.log, blind=False)
            head = new.log.head().seq
        finally:
            new.close()
        kept = _swap(vault, tmp, name)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        state_file.remove(state_file.path_for(tmp))  # the merged vault's own is rebuilt when first needed
    registry.update(log.vault_id, name, pushed_seq=m.head_seq, pushed_hash=m.head_hash.hex())
    return ForkResult(name, fork_at, m.head_seq - fork_at + 1, reapplied, head, kept, stranded)


def _stranded(log: EventLog, name: str, fork_at: int) -> tuple[str, ...]:
    """The other replicas this vault pushed its own events past the fork point to: after the merge they hold
    another history (whose changes the merged vault holds too), so they are to be filled anew."""
    out = []
    for rep in registry.replicas(log.vault_id):
        if rep.name == name:
            continue
        try:
            opened = open_replica(target_for(rep.target), rep.name, (log.vault_id, keyring.verify_key(log.conn)),
                                  issued=push_key.issued(log.conn))
            rel = relation(log, opened)
        except ReplicaError:
            continue  # unreachable now: push will name whatever it finds later
        if not rel.forked and rel.replica_seq >= fork_at:
            out.append(rep.name)
    return tuple(out)


def _copy_rows(vault: Vault, tmp: Path, meta: dict[str, Any]) -> None:
    """The vault's meta rows (its passphrase and recovery wraps) and every attachment the replica lacks,
    as stored (the same key seals both histories)."""
    copies.add_rows(tmp, meta, blobs.sealed_rows(vault.conn))


def _reapply(new: Vault, mine: list[Recorded], fork_at: int, name: str) -> int:
    """Apply the vault's events after the fork as the changes they made to their records; returns how many
    events that appended."""
    base = new.projection  # the replica's state; records as they were at the fork point are read from it
    seen: dict[str, dict[str, Any] | None] = {}  # a record's value in the vault's own history so far
    appended = 0
    with new.transaction() as tx:
        for r in mine:
            e = r.event
            before = seen[e.record_id] if e.record_id in seen else base.record(e.kind, e.record_id, fork_at - 1)
            after = None if e.type is EventType.DELETED else (
                apply_patch(before or {}, e.changes) if e.type is EventType.UPDATED else dict(e.changes))
            seen[e.record_id] = after
            source = Source("fork", name, detail={"seq": r.seq, "source": e.source.as_dict()})
            appended += _apply(tx, new, e, after, source, r.recorded_at)
    return appended


def _apply(tx: Transaction, new: Vault, e: Event, after: dict[str, Any] | None, source: Source, at: int) -> int:
    """One of the vault's events re-applied on top of the replica's history; returns the events appended."""
    rid = e.record_id
    status = new.projection.status(e.kind, rid)
    if after is None:  # deleted in the vault's history
        return 1 if status == "live" and tx.delete(rid, source, recorded_at=at) else 0
    if status == "absent":
        tx.create(e.kind, after, source, record_id=rid, recorded_at=at, checked=False)
    elif status == "deleted":  # the vault went on changing it: bring it back as the vault had it
        tx.append([Event(EventType.REVIVED, e.kind, rid, after, source, at)])
    else:  # live in both: a patch stays a patch (fields only the replica changed are kept)
        patch = dict(e.changes) if e.type is EventType.UPDATED else diff(new.projection.record(e.kind, rid) or {}, after)
        return 1 if tx.update(rid, patch, source, recorded_at=at, checked=False) else 0
    return 1


def _swap(vault: Vault, tmp: Path, name: str) -> Path:
    """Close the vault, keep its file under a new name and put the new file in its place; ReplicaError
    (nothing changed) if another process still has the vault open."""
    path = vault.path
    vault.close()
    if Path(f"{path}-wal").exists():  # SQLite removes it when the last connection closes: someone else has it
        raise ReplicaError(f"Another process (`lifevault serve`?) has {path} open; stop it and run "
                           f"`lifevault pull --fork {name}` again. Nothing was changed.")
    kept = path.with_name(f"{path.name}.before-fork-{iso(now_us()).replace(':', '')}")
    os.link(path, kept)
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return kept
