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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Iterable

from vault.store import blobs, keyring
from vault.store.crypto import Keys, PushKeys
from vault.errors import TamperDetected, VaultError
from vault.domain.instants import iso
from vault.store.log import EventLog, now_us
from vault.vault import Vault
from vault.replica import push_key, registry, repair
from vault.replica.check import verify_replica
from vault.replica.compare import Relation, ahead_sentence, fork_sentence, relation
from vault.replica import lease
from vault.replica.compact import compact_held, small_segments, threshold as compact_threshold
from vault.replica.errors import (
    ReplicaAhead, ReplicaConflict, ReplicaDamaged, ReplicaForked, ReplicaMissing, ReplicaRolledBack, RevokedSigner,
)
from vault.replica.manifest import MANIFEST_NAME, Manifest, parse
from vault.replica.reader import Opened, checked_blobs, checked_rows, needed_segments, open_replica, require_manifest
from vault.replica.segments import (
    MAX_SEGMENT_BYTES, SegmentInfo, blob_segment, cut_events, is_segment_name, max_segment_events,
)
from vault.replica.targets import LocalFolder, Put, Target, target_for

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


def _open_checked(log: EventLog, rep: registry.Replica, target: Target, listing: dict[str, int] | None) -> Opened:
    """Open the replica (from the listing taken with the lease, if any) and refuse one that is missing, emptied or
    rolled back (one replaced by another history is a fork, which `_continues` names)."""
    where = _where(rep)
    identity, issued = (log.vault_id, keyring.verify_key(log.conn)), push_key.issued(log.conn)
    try:
        try:
            opened = open_replica(target, where, identity, listing, issued)
        except RevokedSigner as e:  # its rows may still be this vault's: check every one before signing anew
            try:
                verify_replica(target, where, None, identity, issued, revoked_ok=True, extras=False)
            except ReplicaDamaged as bad:
                raise ReplicaDamaged(f"{str(e).split(';')[0]}, and its rows do not check ({bad}); `lifevault replica "
                                     f"reseed {rep.name}` sets its files aside and fills it anew.") from bad
            opened = open_replica(target, where, identity, None, issued, revoked_ok=True)
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
    _usable(log, key)
    with registry.push_lock(log.vault_id, name):
        rep = registry.get(log.vault_id, name)  # read under the lock: the last push is current
        target = target_for(rep.target)
        # one pusher per replica across machines; an rclone remote's calls all go to one `rclone rcd`
        with session(target), lease.held(target, _where(rep), name, rep.pushed_seq is None) as mine:
            result, manifest = _push(log, rep, target, deep, mine, key)
            if manifest is not None and 0 < compact_threshold() < small_segments(manifest):
                identity = (log.vault_id, keyring.verify_key(log.conn))
                try:
                    compact_held(target, _where(rep), name, identity, key, mine.file, force=False)
                except VaultError as e:  # the push itself took effect; the next one tries again
                    logger.warning("compacting %s after a push failed: %s", name, e)
            return result


def session(target: Target) -> AbstractContextManager[object]:
    """The target's session for a run of calls (an rclone remote's one `rclone rcd`), if its kind has one."""
    start = getattr(target, "session", None)  # optional: a plugin's target kind need not offer one
    return start() if start is not None else nullcontext()


def _usable(log: EventLog, key: Keys | PushKeys) -> None:
    """A push credential the vault revoked (or no longer lists) signs nothing more."""
    if isinstance(key, PushKeys) and (why := push_key.refusal(push_key.issued(log.conn), key.verify_key)):
        raise push_key.BadPushKey(f"This push credential holds {why}, so it may no longer push; create a new one "
                                  "with `lifevault replica push-key create` where the passphrase is at hand.")


def _push(log: EventLog, rep: registry.Replica, target: Target, deep: bool, mine: lease.Held,
          signer: Keys | PushKeys) -> tuple[PushResult, Manifest | None]:
    """The push under a lease; also returns the manifest it wrote (None when nothing changed)."""
    name = rep.name
    opened = _open_checked(log, rep, target, mine.listing)
    m = opened.manifest
    head = log.head()
    rel = _continues(log, opened, name, "Nothing was sent or changed.")
    resign = m is not None and bool(m.signer) and push_key.refusal(push_key.issued(log.conn), m.signer) is not None
    if rel.ahead:
        raise ReplicaAhead(f"{ahead_sentence(opened.where, rel, name)}. Nothing was sent.")
    broken = repair.altered(log, opened, m, deep) if m else []
    fixes = [(seg, why, repair.rebuilt(log, seg, opened.where)) for seg, why in broken]  # all or none
    start = m.head_seq if m else 0
    new_blobs: list[SegmentInfo] = []
    with target.writer() as put:
        for seg, _, data in fixes:
            put(seg.name, data)
        new_events = _send_events(put, cut_events(log.checked_batches(start, head.seq, max_segment_events())))
        for seg, data in _blob_segments(log, m):
            put(seg.name, data)
            new_blobs.append(seg)
    meta = dict(log.conn.execute("SELECT key, value FROM meta"))
    written = bool(new_events or new_blobs or fixes or resign or m is None or m.meta != meta or m.head_seq != head.seq)
    now = iso(now_us())
    repairs = tuple({"segment": seg.name, "at": now, "why": why} for seg, why, _ in fixes)
    if written:
        new = Manifest(log.vault_id, keyring.verify_key(log.conn), head.seq, head.hash, head.mac, head.sig, meta,
                       (m.events if m else ()) + tuple(new_events), (m.blobs if m else ()) + tuple(new_blobs),
                       now, ((m.repairs if m else ()) + repairs)[-_KEPT_REPAIRS:],
                       *((signer.verify_key, signer.delegation) if isinstance(signer, PushKeys) else ()))
        seen = lease.still_held(target, opened.where, name, mine.file)
        _unchanged(target, opened.where, m, seen)
        sealed = new.sealed(signer)
        with target.writer() as put:  # only after every segment above is in place
            put(MANIFEST_NAME, sealed)
        _took_effect(target, opened.where, sealed)
        target.remove(_leftovers(opened, new))
    elif m is not None and (stale := _leftovers(opened, m)):
        lease.still_held(target, opened.where, name, mine.file)  # the lease still keeps other writers out
        target.remove(stale)
    registry.update(log.vault_id, name, pushed_seq=head.seq, pushed_hash=head.hash.hex(), pushed_at=iso(now_us()))
    return PushResult(name, target.location, head.seq, head.seq - start, sum(len(s.blob_ids) for s in new_blobs),
                      sum(s.size for s in new_events + new_blobs), written, repairs), new if written else None


def _send_events(put: Put, cut: Iterable[tuple[SegmentInfo, bytes]]) -> list[SegmentInfo]:
    """Write each segment in a second thread while the next one is read, checked and cut (writing releases the
    GIL). At most two segments wait, so memory stays bounded at any size."""
    def send(seg: SegmentInfo, data: bytes) -> SegmentInfo:
        put(seg.name, data)
        return seg

    sent: list[Future[SegmentInfo]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="lifevault-push") as pool:
        for seg, data in cut:
            if len(sent) >= 2:
                sent[-2].result()  # raises the first failure, and bounds what waits
            sent.append(pool.submit(send, seg, data))
        return [f.result() for f in sent]


def _unchanged(target: Target, where: str, m: Manifest | None, listing: dict[str, int] | None) -> None:
    """The manifest is still the one this push started from (no one pushed meanwhile); `listing`, when the lease
    check just took one, spares a first push another."""
    present = m is not None or MANIFEST_NAME in ((target.listing() if listing is None else listing) or {})
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


def _leftovers(opened: Opened, new: Manifest) -> list[str]:
    """Segment files the manifest does not list: left by an interrupted push (beyond its head) or compaction
    (copies of listed rows). A finished segment is always listed, and under the lease no one else is writing."""
    listed = {s.name for s in new.segments}
    return sorted(name for name in opened.listing if is_segment_name(name) and name not in listed)


def _blob_segments(log: EventLog, m: Manifest | None):
    """Segments of the blobs the replica does not list, cut by size."""
    have = m.blob_ids if m else set()
    missing = [bid for (bid,) in log.conn.execute("SELECT id FROM blobs") if bid.hex() not in have]
    ordinal = len(m.blobs) if m else 0
    batch, size = [], 0
    for bid in sorted(missing):
        payload = blobs.sealed_payloads(log.conn, [bid])[bid]
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
    _usable(log, key)
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
        with session(target), lease.held(target, _where(rep), name, True) as mine:
            return aside, _push(log, rep, target, False, mine, key)[0]


def unlock(vault_id: bytes, name: str) -> list[lease.Lease]:
    """Remove every push lease on replica `name` (a machine that died mid-push left it)."""
    return lease.unlock(target_for(registry.get(vault_id, name).target))


def relation_of(log: EventLog, name: str) -> Relation:
    """How replica `name`'s history stands to this vault's (read without the key)."""
    rep = registry.get(log.vault_id, name)
    return relation(log, open_replica(target_for(rep.target), _where(rep), (log.vault_id, keyring.verify_key(log.conn)),
                                      issued=push_key.issued(log.conn)))


def pull(vault: Vault, name: str) -> PullResult:
    """Append the events (and blobs) replica `name` holds beyond this vault's head, identical rows,
    after checking that they continue this vault's chain and open with its key."""
    log, keys = vault.log, vault.keys
    rep = registry.get(log.vault_id, name)
    opened = open_replica(target_for(rep.target), _where(rep), (log.vault_id, keyring.verify_key(log.conn)),
                          issued=push_key.issued(log.conn))
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
        w.append_sealed(rows)  # the writer signs and MACs the new head on commit
        w.add_sealed_blobs(blobs)
    vault.refresh()
    registry.update(log.vault_id, name, pushed_seq=m.head_seq, pushed_hash=m.head_hash.hex())
    return PullResult(name, len(rows), len(blobs), m.head_seq)
