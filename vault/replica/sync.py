"""Push a vault's new rows to a replica, and pull rows a replica has that the vault lacks.

Push sends only what the replica lacks: event segments after the replica's
head and blob segments of blobs it does not list, then the manifest, last.
A file under its final name is never rewritten once a manifest lists it, so
an interrupted push is finished by running it again (which then removes the
unlisted segments the interrupted one left beyond the old head, if any). Before sending anything
the replica is checked: missing or empty where this vault pushed before,
rolled back (older than the head this vault pushed there), forked (another
hash at the same seq, or a history that parts from the vault's) or ahead of
the vault all stop the push, which then deletes and rewinds nothing. A listed
segment that is missing or no longer matches its digest is sent again from
the vault (the same bytes) and the repair is recorded in the manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vault.store import keyring
from vault.store.crypto import Keys, PushKeys
from vault.errors import TamperDetected, VaultError
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us
from vault.vault import Vault
from vault.replica import registry, repair
from vault.replica.compare import Relation, ahead_sentence, fork_sentence, relation
from vault.replica import lease
from vault.replica.compact import compact_held, threshold as compact_threshold
from vault.replica.errors import (
    ReplicaAhead, ReplicaConflict, ReplicaDamaged, ReplicaForked, ReplicaMissing, ReplicaRolledBack,
)
from vault.replica.manifest import MANIFEST_NAME, Manifest, parse
from vault.replica.reader import Opened, checked_blobs, checked_rows, needed_segments, open_replica, require_manifest
from vault.replica.segments import (
    MAX_SEGMENT_BYTES, SegmentInfo, blob_ordinal, blob_segment, chunk_events, segment_range,
)
from vault.replica.targets import LocalFolder, Target, target_for

logger = logging.getLogger("lifevault.replica")
_KEPT_REPAIRS = 100  # the manifest remembers this many repairs


@dataclass(frozen=True)
class PushResult:
    name: str
    location: str
    head_seq: int
    events: int  # events sent
    blobs: int  # blobs sent
    bytes: int  # segment bytes sent
    manifest_written: bool
    repaired: tuple[dict[str, str], ...] = ()  # segments re-sent because they no longer matched the manifest


@dataclass(frozen=True)
class PullResult:
    name: str
    events: int
    blobs: int
    head_seq: int


def _where(rep: registry.Replica) -> str:
    return f"Replica {rep.name} ({rep.target})"


def _open_checked(log: EventLog, rep: registry.Replica, target: Target) -> Opened:
    """Open the replica and refuse one that is missing, emptied or rolled back (one replaced by another
    history is a fork, which `_continues` names)."""
    where = _where(rep)
    identity = (log.vault_id, keyring.verify_key(log.conn))
    try:
        opened = open_replica(target, where, identity)
    except ReplicaMissing as e:
        if rep.pushed_seq is None and not isinstance(target, LocalFolder):
            return Opened(where, target, {}, None)  # a first push creates the remote folder
        raise ReplicaMissing(f"{e} Nothing was sent or changed.") from e
    m = opened.manifest
    if m is None and rep.pushed_seq:
        raise ReplicaMissing(f"{where} is empty although this vault pushed up to event {rep.pushed_seq} there "
                             "(another drive mounted there, or wiped?); nothing was sent or changed.")
    seq = m.head_seq if m else 0
    if rep.pushed_seq is not None and seq < rep.pushed_seq:
        raise ReplicaRolledBack(f"{where} was rolled back: it ends at event {seq} but this vault already pushed up to "
                                f"event {rep.pushed_seq} there (an older copy put back?); nothing was sent or changed.")
    return opened


def _continues(log: EventLog, opened: Opened, name: str, doing: str) -> Relation:
    """The replica's relation to the vault; ReplicaForked when it holds another history."""
    rel = relation(log, opened)
    if rel.forked:
        raise ReplicaForked(f"{fork_sentence(opened.where, rel, name)}. {doing}")
    return rel


def push(log: EventLog, name: str, *, deep: bool = False, signer: PushKeys | None = None) -> PushResult:
    """Send what replica `name` lacks and re-send its segments that no longer match the manifest (a remote's
    bytes are re-read only when `deep`), then its new manifest, signed with the vault's keys or, for a vault
    opened without them, the push credential `signer`; the vault is only read."""
    key: Keys | PushKeys | None = signer or log.keys
    assert key is not None, "pushing signs the manifest: unlock the vault or give a push credential"
    with registry.push_lock(log.vault_id, name):
        rep = registry.get(log.vault_id, name)  # read under the lock: the last push is current
        target = target_for(rep.target)
        with lease.held(target, _where(rep), name, rep.pushed_seq is None) as mine:  # and one pusher per replica across machines
            result = _push(log, rep, target, deep, mine, key)
            if result.manifest_written and compact_threshold():  # past the threshold of small segments only
                identity = (log.vault_id, keyring.verify_key(log.conn))
                try:
                    compact_held(target, _where(rep), name, identity, key, mine, force=False)
                except VaultError as e:  # the push itself took effect; the next one tries again
                    logger.warning("compacting %s after a push failed: %s", name, e)
            return result


def _push(log: EventLog, rep: registry.Replica, target: Target, deep: bool, mine: str | None,
          signer: Keys | PushKeys) -> PushResult:
    name = rep.name
    opened = _open_checked(log, rep, target)
    m = opened.manifest
    head = log.head()
    rel = _continues(log, opened, name, "Nothing was sent or changed.")
    if rel.ahead:
        raise ReplicaAhead(f"{ahead_sentence(opened.where, rel, name)}. Nothing was sent.")
    broken = repair.altered(opened, m, deep) if m else []
    fixes = [(seg, why, repair.rebuilt(log, seg, opened.where)) for seg, why in broken]  # all or none
    start = m.head_seq if m else 0
    new_events: list[SegmentInfo] = []
    new_blobs: list[SegmentInfo] = []
    with target.writer() as put:
        for seg, _, data in fixes:
            put(seg.name, data)
        rows = ((seq, h, payload) for seq, _, h, payload in log.checked_rows(start, head.seq))
        for seg, data in chunk_events(rows):
            put(seg.name, data)
            new_events.append(seg)
        for seg, data in _blob_segments(log, m):
            put(seg.name, data)
            new_blobs.append(seg)
    meta = dict(log.conn.execute("SELECT key, value FROM meta"))
    written = bool(new_events or new_blobs or fixes or m is None or m.meta != meta or m.head_seq != head.seq)
    now = iso(now_us())
    repairs = tuple({"segment": seg.name, "at": now, "why": why} for seg, why, _ in fixes)
    if written:
        new = Manifest(log.vault_id, keyring.verify_key(log.conn), head.seq, head.hash, head.mac, head.sig, meta,
                       (m.events if m else ()) + tuple(new_events), (m.blobs if m else ()) + tuple(new_blobs),
                       now, ((m.repairs if m else ()) + repairs)[-_KEPT_REPAIRS:],
                       *((signer.verify_key, signer.delegation) if isinstance(signer, PushKeys) else ()))
        lease.still_held(target, opened.where, name, mine)
        _unchanged(target, opened.where, m)
        sealed = new.sealed(signer)
        with target.writer() as put:  # only after every segment above is in place
            put(MANIFEST_NAME, sealed)
        _took_effect(target, opened.where, sealed)
        target.remove(_leftovers(opened, m, new))
    registry.update(log.vault_id, name, pushed_seq=head.seq, pushed_hash=head.hash.hex(), pushed_at=iso(now_us()))
    return PushResult(name, target.location, head.seq, head.seq - start, sum(len(s.blob_ids) for s in new_blobs),
                      sum(s.size for s in new_events + new_blobs), written, repairs)


def _unchanged(target: Target, where: str, m: Manifest | None) -> None:
    """The manifest is still the one this push started from (no one pushed meanwhile)."""
    present = m is not None or MANIFEST_NAME in (target.listing() or {})  # a first push: only list
    data = target.read(MANIFEST_NAME) if present else None
    now = parse(data, where) if data is not None else None
    if (now.body if now else None) != (m.body if m else None):
        raise ReplicaConflict(f"{where} was pushed to by another machine during this push (it now ends at event "
                              f"{now.head_seq if now else 0}); this push's manifest was not written, so nothing "
                              "changed there. Run push again to see where the two stand.")


def _took_effect(target: Target, where: str, sealed: bytes) -> None:
    """Re-read the manifest just written: a push is reported only when its own head is the one there."""
    if target.read(MANIFEST_NAME) != sealed:
        raise ReplicaConflict(f"{where} was pushed to by another machine at the same moment and holds its manifest, "
                              "not this push's; this push did not take effect. Run push again to see where the two "
                              "stand.")


def _leftovers(opened: Opened, old: Manifest | None, new: Manifest) -> list[str]:
    """Segment files an interrupted push left beyond the old manifest that the new one does not list
    (a later push covered other seq ranges); finished segments are always listed, so never these."""
    listed, old_head = {s.name for s in new.segments}, old.head_seq if old else 0
    old_blobs = len(old.blobs) if old else 0
    out = []
    for name in opened.listing:
        if name in listed:
            continue
        rng = segment_range(name)
        if (rng and rng[0] > old_head) or ((n := blob_ordinal(name)) is not None and n > old_blobs):
            out.append(name)
    return sorted(out)


def _blob_segments(log: EventLog, m: Manifest | None):
    """Segments of the blobs the replica does not list, cut by size."""
    have = m.blob_ids if m else set()
    missing = [bid for (bid,) in log.conn.execute("SELECT id FROM blobs") if bid.hex() not in have]
    ordinal = len(m.blobs) if m else 0
    batch, size = [], 0
    for bid in sorted(missing):
        (payload,) = log.conn.execute("SELECT payload FROM blobs WHERE id = ?", (bid,)).fetchone()
        batch.append((bid, payload))
        size += len(payload)
        if size >= MAX_SEGMENT_BYTES:
            ordinal += 1
            yield blob_segment(ordinal, batch)
            batch, size = [], 0
    if batch:
        yield blob_segment(ordinal + 1, batch)


def reseed(log: EventLog, name: str, *, signer: PushKeys | None = None) -> tuple[str | None, PushResult]:
    """Fill replica `name` anew from this vault (after a fork, or a replica another vault's history stranded):
    its present files are moved to a sibling folder, kept, and the head this vault had pushed there is recorded
    in the replica's entry before the full push. Returns where the old files went and the push."""
    key: Keys | PushKeys | None = signer or log.keys
    assert key is not None, "pushing signs the manifest: unlock the vault or give a push credential"
    with registry.push_lock(log.vault_id, name):
        rep = registry.get(log.vault_id, name)
        target = target_for(rep.target)
        with lease.held(target, _where(rep), name, rep.pushed_seq is None):
            pass  # no other machine is pushing there now
        now = iso(now_us())
        aside = target.set_aside(f".before-reseed-{now[:19].replace(':', '')}") if target.listing() else None
        record = {"at": now, "seq": rep.pushed_seq, "hash": rep.pushed_hash, "set_aside": aside}
        registry.update(log.vault_id, name, pushed_seq=None, pushed_hash=None, reseeds=(*rep.reseeds, record))
        rep = registry.get(log.vault_id, name)
        with lease.held(target, _where(rep), name, True) as mine:
            return aside, _push(log, rep, target, False, mine, key)


def unlock(vault_id: bytes, name: str) -> list[lease.Lease]:
    """Remove every push lease on replica `name` (a machine that died mid-push left it)."""
    return lease.unlock(target_for(registry.get(vault_id, name).target))


def relation_of(log: EventLog, name: str) -> Relation:
    """How replica `name`'s history stands to this vault's (read without the key)."""
    rep = registry.get(log.vault_id, name)
    return relation(log, open_replica(target_for(rep.target), _where(rep), (log.vault_id, keyring.verify_key(log.conn))))


def pull(vault: Vault, name: str) -> PullResult:
    """Append the events (and blobs) replica `name` holds beyond this vault's head, identical rows,
    after checking that they continue this vault's chain and open with its key."""
    log, keys = vault.log, vault.keys
    rep = registry.get(log.vault_id, name)
    opened = open_replica(target_for(rep.target), _where(rep), (log.vault_id, keyring.verify_key(log.conn)))
    m, where = require_manifest(opened), opened.where
    head = log.head()
    if not _continues(log, opened, name, "Nothing was added.").ahead:
        return PullResult(name, 0, 0, head.seq)
    m.check_mac(keys, where)
    have = {bid.hex() for (bid,) in log.conn.execute("SELECT id FROM blobs")}
    wanted = m.blob_ids - have
    names = [s.name for s in needed_segments(m, head.seq)] + [s.name for s in m.blobs if not wanted.isdisjoint(s.blob_ids)]
    with opened.target.local_copy(names) as folder:
        rows = [r for batch in checked_rows(m, folder, where, head.seq, head.hash) for r in batch]
        blobs = list(checked_blobs(m, folder, where, wanted))
    prev = head.hash
    for seq, stored, payload in rows:  # every tag must open before anything is stored
        try:
            log.decrypt(seq, prev, payload)
        except TamperDetected as e:
            raise ReplicaDamaged(f"{where} is damaged: event {seq} does not open with this vault's key.") from e
        prev = stored
    with log.writer() as w:
        if (w.seq, w.hash) != (head.seq, head.hash):
            raise ReplicaAhead(f"The vault changed while pulling from {where}; nothing was added, run pull again.")
        log.conn.executemany("INSERT INTO events (seq, hash, payload) VALUES (?, ?, ?)", rows)
        log.conn.executemany("INSERT OR IGNORE INTO blobs (id, payload) VALUES (?, ?)", blobs)
        w.seq, w.hash = rows[-1][0], rows[-1][1]  # the writer signs and MACs this head on commit
    vault.refresh()
    registry.update(log.vault_id, name, pushed_seq=m.head_seq, pushed_hash=m.head_hash.hex())
    return PullResult(name, len(rows), len(blobs), m.head_seq)
