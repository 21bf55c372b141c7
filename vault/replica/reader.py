"""Reading a replica: its manifest, its files, its rows checked against the chain.

Everything here works without the passphrase. `build_vault_file` turns a
replica's raw parts (meta rows, event rows, blobs, head) back into a vault
file, byte-for-byte the same rows as the vault that pushed them.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vault.errors import TamperDetected
from vault.store import copies, crypto
from vault.store.log import Head
from vault.replica.errors import ForeignReplica, ReplicaDamaged, ReplicaMissing
from vault.replica.manifest import MANIFEST_NAME, Manifest, parse
from vault.replica.push_key import Issued
from vault.replica.segments import (
    Row, SegmentInfo, decode_blobs, decode_events, holds_digest, is_segment_name, segment_range,
)
from vault.replica.targets import LocalFolder, Target


def is_lease_name(name: str) -> bool:
    """A pusher's lease file (lease.py), which comes and goes beside the manifest."""
    return bool(re.match(r"^lock-[0-9a-f]{16}\.json$", name))


@dataclass(frozen=True)
class Opened:
    """A replica as found: its file listing and its (signature-checked) manifest, if any."""

    where: str
    target: Target
    listing: dict[str, int]
    manifest: Manifest | None


def open_replica(target: Target, where: str, expect: tuple[bytes, bytes] | None = None,
                 listing: dict[str, int] | None = None, issued: Issued | None = None,
                 revoked_ok: bool = False) -> Opened:
    """List the replica (unless given a listing just taken) and read its manifest, refusing one signed by a push
    key `issued` (the vault's list, else the manifest's own) does not list unrevoked; ReplicaMissing when its
    folder is gone."""
    listing = target.listing() if listing is None else listing
    if listing is None:
        hint = "is the drive mounted?" if isinstance(target, LocalFolder) else "deleted, or a wrong remote path?"
        raise ReplicaMissing(f"{where} is missing: {target.location} does not exist ({hint}).")
    manifest = None
    if MANIFEST_NAME in listing:
        data = target.read(MANIFEST_NAME)
        if data is None:
            raise ReplicaMissing(f"{where} lost its manifest while being read; try again.")
        manifest = parse(data, where)
        manifest.check_signatures(where, issued, revoked_ok)
        if expect is not None and (manifest.vault_id, manifest.verify_key) != expect:
            raise ForeignReplica(f"{where} holds another vault (id {manifest.vault_id.hex()[:12]}…), not this one.")
    return Opened(where, target, listing, manifest)


def require_manifest(opened: Opened) -> Manifest:
    if opened.manifest is None:
        raise ReplicaMissing(f"{opened.where} is empty: it has no manifest (nothing was ever fully pushed there).")
    return opened.manifest


def redundant_segments(opened: Opened) -> list[str]:
    """Unlisted event segment files inside the signed head's range: copies of rows the listed segments hold, left
    by a compaction killed midway (its merged segments before its manifest, the replaced ones after). They change
    nothing a reader fetches; the next push or compaction removes them."""
    m = require_manifest(opened)
    listed = {s.name for s in m.segments}
    out = []
    for name in opened.listing:
        rng = segment_range(name)
        if name not in listed and rng and 1 <= rng[0] <= rng[1] <= m.head_seq:
            out.append(name)
    return sorted(out)


def file_problems(opened: Opened, extras: bool = True) -> list[str]:
    """Missing, extra (unless not asked; leftovers of a compaction are not), truncated or resized files, judged
    from the listing alone."""
    m = require_manifest(opened)
    listed = {s.name for s in m.segments} | set(redundant_segments(opened))
    problems = []
    for seg in m.segments:
        size = opened.listing.get(seg.name)
        if size is None:
            problems.append(f"segment {seg.name} is missing")
        elif size < seg.size:
            problems.append(f"segment {seg.name} is truncated ({size} of {seg.size} bytes)")
        elif size != seg.size:
            problems.append(f"segment {seg.name} is altered ({size} bytes, the manifest says {seg.size})")
    for name in sorted(opened.listing) if extras else ():
        if name != MANIFEST_NAME and name not in listed and not is_lease_name(name):
            kind = "segment" if is_segment_name(name) else "file"
            problems.append(f"extra {kind} {name} is not in the manifest")
    return problems


def digest_problems(m: Manifest, folder: Path, present: set[str]) -> list[str]:
    """Segments whose bytes differ from the digest the manifest records."""
    return [f"segment {s.name} is altered (its digest differs from the manifest's)"
            for s in m.segments if s.name in present and not holds_digest(s, (folder / s.name).read_bytes())]


def damaged(where: str, problems: list[str]) -> ReplicaDamaged:
    return ReplicaDamaged(f"{where} is damaged: {'; '.join(problems)}.")


def segment_bytes(folder: Path, seg: SegmentInfo, where: str) -> bytes:
    """A segment's bytes, checked against the manifest's size and digest."""
    try:
        data = (folder / seg.name).read_bytes()
    except FileNotFoundError:
        raise damaged(where, [f"segment {seg.name} is missing"]) from None
    if len(data) != seg.size or not holds_digest(seg, data):
        raise damaged(where, [f"segment {seg.name} is altered or truncated (its digest differs from the manifest's)"])
    return data


def segment_rows(folder: Path, seg: SegmentInfo, where: str) -> list[Row]:
    """An event segment's rows, its size and digest checked (not yet its chain: the caller follows it)."""
    return decode_events(seg.name, segment_bytes(folder, seg, where))


def needed_segments(m: Manifest, after: int) -> list[SegmentInfo]:
    return sorted((s for s in m.events if s.last > after), key=lambda s: s.first)


def checked_rows(m: Manifest, folder: Path, where: str, after: int = 0, prev: bytes | None = None) -> Iterator[list[Row]]:
    """The event rows after seq `after`, one segment at a time, checking seq continuity, every chain
    hash (from `prev`, the hash at `after`) and that the last one is the signed head."""
    prev = crypto.genesis_hash(m.vault_id) if prev is None else prev
    expected = after + 1
    for seg in needed_segments(m, after):
        if seg.first > expected:
            raise damaged(where, [f"events {expected} to {seg.first - 1} are in no segment (before {seg.name})"])
        rows = []
        for seq, stored, payload in segment_rows(folder, seg, where):
            if seq < expected:
                continue  # already held (a pull from the middle of a segment)
            if seq != expected:
                raise damaged(where, [f"segment {seg.name} skips from event {expected - 1} to {seq}"])
            if crypto.chain_hash(prev, seq, payload) != stored:
                raise damaged(where, [f"event {seq} in segment {seg.name} breaks the hash chain"])
            rows.append((seq, stored, payload))
            prev, expected = stored, seq + 1
        yield rows
    if expected - 1 != m.head_seq or prev != m.head_hash:
        raise damaged(where, [f"the segments end at event {expected - 1} but the signed head is event {m.head_seq}"])


def checked_blobs(m: Manifest, folder: Path, where: str, wanted: set[str] | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(raw id, sealed payload) of every blob (or only `wanted` ids), each in the segment the manifest says."""
    for seg in m.blobs:
        if wanted is not None and wanted.isdisjoint(seg.blob_ids):
            continue
        pairs = decode_blobs(seg.name, segment_bytes(folder, seg, where))
        if tuple(b.hex() for b, _ in pairs) != seg.blob_ids:
            raise damaged(where, [f"segment {seg.name} holds other blobs than the manifest lists"])
        yield from (p for p in pairs if wanted is None or p[0].hex() in wanted)


def build_vault_file(path: Path, m: Manifest, folder: Path, where: str) -> None:
    """Write a new vault file from a replica's raw parts (checked on the way); nothing is decrypted."""
    head = Head(m.head_seq, m.head_hash, m.head_mac, m.head_sig) if m.head_seq else None
    try:
        copies.build_file(path, m.meta, checked_rows(m, folder, where), checked_blobs(m, folder, where), head)
    except (sqlite3.DatabaseError, TamperDetected) as e:
        raise damaged(where, [f"its rows cannot be stored ({e})"]) from e
