"""Compaction: runs of small event segments merged into large ones under a new signed manifest.

Every push adds a segment, and a server pushing after each write burst makes
many small ones; each costs a file, a listing entry and a manifest line. A
compaction reads the replica's own rows (no vault needed: they are checked
against the chain and the signed head), writes the merged segments under new
names, then the new manifest, re-reads and checks what that manifest lists,
and only then deletes the segments it replaced. Killed at any point, the
replica holds either the old manifest with all its segments or the new one
with all of its own; the files of an interrupted run are unlisted extras that
the next compaction removes first. Blob segments are left as they are (their
ordinals number later pushes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from vault.store.crypto import Keys, PushKeys
from vault.domain.instants import iso
from vault.store.log import now_us
from vault.replica import lease, registry
from vault.replica.manifest import MANIFEST_NAME, Manifest
from vault.replica.errors import ReplicaConflict
from vault.replica.manifest import parse
from vault.replica.reader import (
    Opened, damaged, digest_problems, file_problems, open_replica, require_manifest, segment_rows,
)
from vault.replica.segments import (
    MAX_SEGMENT_BYTES, SegmentInfo, broken_link, encode_events, is_segment_name, segment_range,
)
from vault.replica.targets import Target, target_for


def threshold() -> int:
    """Small segments a push tolerates before it compacts: $LIFEVAULT_COMPACT_SEGMENTS, else 500 (0: never)."""
    return int(os.environ.get("LIFEVAULT_COMPACT_SEGMENTS", "500"))


def _small(seg: SegmentInfo) -> bool:
    return seg.size < MAX_SEGMENT_BYTES // 2


def small_segments(m: Manifest) -> int:
    return sum(1 for s in m.events if _small(s))


@dataclass(frozen=True)
class CompactResult:
    name: str
    before: int  # event segments before
    after: int
    removed: int  # files deleted (replaced segments and leftovers of an interrupted run)


def _runs(m: Manifest) -> list[list[SegmentInfo]]:
    """Maximal runs of adjacent small event segments, two or more long: what is worth merging."""
    runs, run = [], []
    for seg in sorted(m.events, key=lambda s: s.first):
        if _small(seg):
            run.append(seg)
            continue
        runs.append(run)
        run = []
    runs.append(run)
    return [r for r in runs if len(r) >= 2]


def _merged(rows: list, limit: int = MAX_SEGMENT_BYTES) -> list[tuple[SegmentInfo, bytes]]:
    """The rows cut by size alone into segments of up to `limit` bytes."""
    out, batch, size = [], [], 0
    for row in rows:
        batch.append(row)
        size += len(row[2]) + 44
        if size >= limit:
            out.append(batch)
            batch, size = [], 0
    if batch:
        out.append(batch)
    return [encode_events(b) for b in out]


def _run_rows(run: list[SegmentInfo], folder, where: str) -> list:
    """The rows of a run of segments, each segment's bytes as the signed manifest records them, the chain
    unbroken across the run."""
    rows = []
    for seg in run:
        rows += segment_rows(folder, seg, where)
    if (seq := broken_link(rows, None)) is not None:
        raise damaged(where, [f"event {seq} breaks the hash chain (nothing was compacted)"])
    return rows


def _unlisted(opened: Opened, m: Manifest) -> list[str]:
    listed = {s.name for s in m.segments}
    return sorted(n for n in opened.listing if is_segment_name(n) and n not in listed and segment_range(n))


def _check_new(target: Target, where: str, expected: bytes, fresh: list[str]) -> Manifest:
    """The manifest now on the replica is ours, and every segment it lists is there and whole."""
    opened = open_replica(target, where)
    m = require_manifest(opened)
    if target.read(MANIFEST_NAME) != expected:
        raise damaged(where, ["its manifest changed during compaction"])
    problems = file_problems(opened, extras=False)
    with target.local_copy(fresh) as folder:
        problems += digest_problems(m, folder, set(fresh))
        if problems:
            raise damaged(where, problems)
        for seg in (s for s in m.events if s.name in fresh):
            segment_rows(folder, seg, where)
    return m


def compact(vault_id: bytes, verify_key: bytes, name: str, signer: Keys | PushKeys, *, force: bool = True) -> CompactResult:
    """Merge replica `name`'s runs of small event segments; with `force` off, only past the threshold."""
    with registry.push_lock(vault_id, name):
        rep = registry.get(vault_id, name)
        target = target_for(rep.target)
        where = f"Replica {rep.name} ({rep.target})"
        with lease.held(target, where, name, False) as mine:
            return compact_held(target, where, name, (vault_id, verify_key), signer, mine.file, force)


def compact_held(target: Target, where: str, name: str, identity: tuple[bytes, bytes], signer: Keys | PushKeys,
                 mine: str | None, force: bool) -> CompactResult:
    """Compact under a lease already held (a push past the threshold does this before letting go)."""
    opened = open_replica(target, where, identity)
    m = require_manifest(opened)
    leftovers = _unlisted(opened, m)
    target.remove(leftovers)
    runs = _runs(m)
    if not runs or (not force and small_segments(m) <= threshold()):
        return CompactResult(name, len(m.events), len(m.events), len(leftovers))
    present = set(opened.listing) - set(leftovers)
    replaced = {s.name for run in runs for s in run}
    fetch = sorted(replaced)
    new_segments: list[SegmentInfo] = []
    with target.local_copy(fetch) as folder:
        merged = [seg_data for run in runs for seg_data in _merged(_run_rows(run, folder, where))]
    with target.writer() as put:
        for seg, data in merged:
            if seg.name not in present:  # a merge an interrupted run already wrote is the same bytes
                put(seg.name, data)
            new_segments.append(seg)
    kept = [s for s in m.events if s.name not in replaced]
    events = tuple(sorted(kept + new_segments, key=lambda s: s.first))
    extra = (signer.verify_key, signer.delegation) if isinstance(signer, PushKeys) else (b"", b"")
    new = replace(m, events=events, written_at=iso(now_us()), signer=extra[0], delegation=extra[1])
    lease.still_held(target, where, name, mine)
    now = target.read(MANIFEST_NAME)
    if now is None or parse(now, where).body != m.body:
        raise ReplicaConflict(f"{where} was pushed to by another machine during compaction; nothing was replaced "
                              "(the merged segments it wrote are removed by the next compaction).")
    sealed = new.sealed(signer)
    with target.writer() as put:
        put(MANIFEST_NAME, sealed)
    _check_new(target, where, sealed, [s.name for s in new_segments])
    old = sorted(replaced - {s.name for s in new_segments})
    target.remove(old)  # only now: the new manifest and everything it lists are in place and checked
    return CompactResult(name, len(m.events), len(events), len(old) + len(leftovers))
