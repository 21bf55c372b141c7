"""Finding a replica's segments that no longer match its manifest, and rebuilding them from the vault.

A segment is a pure function of vault rows (event segments: the rows of its
seq range; blob segments: its blobs, sorted), so a vault whose history the
replica's continues holds every byte of it. A rebuilt segment is sent only if
its digest equals the one the signed manifest records: the repair puts back
exactly what was pushed, never something else. An event segment whose digest
covers only its framing is checked by that digest on every push (a third of
the cost of hashing the file); a changed byte inside a payload shows only in
the chain, which `--deep` follows too, from the vault's hash before the
segment's first row (what `replica verify` suggests when it finds one).
"""

from __future__ import annotations

from pathlib import Path

from vault.store import blobs
from vault.errors import TamperDetected
from vault.store.log import EventLog
from vault.replica.errors import ReplicaDamaged
from vault.replica.manifest import Manifest
from vault.replica.reader import Opened
from vault.replica.segments import SegmentInfo, blob_ordinal, blob_segment, encode_events, holds_digest, matches
from vault.replica.targets import LocalFolder


def altered(log: EventLog, opened: Opened, m: Manifest, deep: bool) -> list[tuple[SegmentInfo, str]]:
    """(segment, what is wrong) for every listed segment that is missing, of the wrong size or, where its
    bytes are cheap to read (a local folder, or `deep`), whose digest differs from the manifest's, or, when `deep`,
    whose rows are off the vault's chain."""
    out, rehash = [], []
    for seg in m.segments:
        size = opened.listing.get(seg.name)
        if size is None:
            out.append((seg, "was missing"))
        elif size != seg.size:
            out.append((seg, f"had {size} bytes, not {seg.size}"))
        else:
            rehash.append(seg)
    local = isinstance(opened.target, LocalFolder)
    if local or deep:
        same = _matches if local else _hash_matches  # a remote's fetched copies are new files every time
        with opened.target.local_copy([] if local else [s.name for s in rehash]) as folder:
            out += [(s, "no longer matched its digest") for s in rehash if not same(log, folder / s.name, s, deep)]
    return out


def _before(log: EventLog, seg: SegmentInfo) -> bytes | None:
    """The vault's chain hash before the segment's first row, for a segment whose rows the chain checks (None
    when the vault lacks it: the rows' links to each other are still followed)."""
    if seg.covers == "file":
        return None
    try:
        return log.hash_at(seg.first - 1)
    except TamperDetected:
        return None


def _hash_matches(log: EventLog, path: Path, seg: SegmentInfo, deep: bool) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # removed since the listing
        return False
    return matches(seg, data, _before(log, seg)) if deep else holds_digest(seg, data)


# Files this process found intact, by (path, digest, deep) -> (inode, size, mtime): a server pushing every few
# seconds re-reads only what was written since; a new process, every file.
_intact: dict[tuple[str, str, bool], tuple[int, int, int]] = {}


def _matches(log: EventLog, path: Path, seg: SegmentInfo, deep: bool) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    if _intact.get((str(path), seg.digest, True)) == stamp or _intact.get((str(path), seg.digest, deep)) == stamp:
        return True
    key = (str(path), seg.digest, deep)
    ok = _hash_matches(log, path, seg, deep)
    if ok:
        _intact[key] = stamp
    return ok


def rebuilt(log: EventLog, seg: SegmentInfo, where: str) -> bytes:
    """The segment's bytes made again from the vault; ReplicaDamaged when the vault cannot give the same bytes."""
    if seg.blob_ids:
        ids = [bytes.fromhex(b) for b in seg.blob_ids]
        found = blobs.sealed_payloads(log.conn, ids)
        data = blob_segment(blob_ordinal(seg.name) or 0, list(found.items()))[1] if len(found) == len(ids) else b""
    else:
        rows = list(log.rows(seg.first - 1, seg.last))
        data = encode_events(rows)[1] if rows else b""
    if not matches(seg, data, _before(log, seg)):
        raise ReplicaDamaged(f"{where} is damaged: segment {seg.name} no longer matches the manifest and this vault "
                             "cannot make it again (it lacks its rows); push from a vault that holds them, or "
                             "clone another replica.")
    return data
