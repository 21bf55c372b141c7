"""Segment files: immutable runs of raw, already-encrypted vault rows.

An event segment holds the rows (seq, chain hash, sealed payload) of one seq
range exactly as the vault stores them; a blob segment holds sealed blobs.
Nothing is decrypted or re-encrypted on the way, so a replica holds only
ciphertext. File names reveal a seq range (events) or a push ordinal (blobs),
nothing else. Layout, big-endian:

    event segment: b"LVREPEV1" first:u64 last:u64, then per row  seq:u64 len:u32 hash[32] payload[len]
    blob segment:  b"LVREPBL1" count:u64,          then per blob id[32] len:u32 payload[len]

The manifest records a BLAKE2b digest of each segment. For an event segment
written since manifest format 2 it covers the segment's framing (its header
and every row's seq, length and chain hash: the file without its payloads),
not every byte: each chain hash already commits to its row's sealed bytes,
and every reader that trusts a row (verify, clone, pull, compaction, a repair
by `push --deep`) checks it against the chain up to the signed head. A push
then hashes each byte once (the chain check) rather than twice. Blob segments,
and event segments listed by older manifests, keep a digest of the whole file.
"""

from __future__ import annotations

import os
import re
import struct
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate, chain, islice
from operator import itemgetter
from typing import Iterable, Iterator

from vault.store import crypto
from vault.replica.errors import ReplicaDamaged

EVENTS_MAGIC, BLOBS_MAGIC = b"LVREPEV1", b"LVREPBL1"
HASH = crypto.HASH_BYTES
MAX_SEGMENT_BYTES = 8 << 20
_EVENT_ROW = struct.Struct(">QI")
_BLOB_LEN = struct.Struct(">I")
_EVENTS_NAME = re.compile(r"^events-(\d{12})-(\d{12})\.seg$")
_BLOBS_NAME = re.compile(r"^blobs-(\d{6})\.seg$")

Row = tuple[int, bytes, bytes]  # (seq, chain hash, sealed payload)


def max_segment_events() -> int:
    """Events per segment: $LIFEVAULT_SEGMENT_EVENTS (small values make many segments), else 10,000."""
    return int(os.environ.get("LIFEVAULT_SEGMENT_EVENTS", "10000"))


@dataclass(frozen=True)
class SegmentInfo:
    """One file of a replica as the manifest lists it."""

    name: str
    size: int
    digest: str  # hex BLAKE2b of the whole file, or of its framing (`covers`)
    first: int = 0  # event segments: the seq range
    last: int = 0
    blob_ids: tuple[str, ...] = ()  # blob segments: keyed ids (opaque without the key)
    covers: str = "file"  # FRAMING: the digest covers the event segment's framing (see the module's docstring)

    def as_dict(self) -> dict:
        d = {"name": self.name, "size": self.size, "digest": self.digest}
        if self.blob_ids:
            d["blob_ids"] = list(self.blob_ids)
        else:
            d.update(first=self.first, last=self.last)
        if self.covers != "file":
            d["covers"] = self.covers
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentInfo":
        covers = d.get("covers", "file")
        if covers not in ("file", FRAMING):
            raise ValueError(f"segment {d['name']} has a digest of an unknown kind {covers!r}")
        return cls(d["name"], d["size"], d["digest"], d.get("first", 0), d.get("last", 0), tuple(d.get("blob_ids", ())),
                   covers)


FRAMING = "framing"
_FRAMING_PERSON = b"lv-seg-framing"


def digest(data: bytes) -> str:
    """The digest of a whole file (blob segments; event segments of format-1 manifests)."""
    return crypto.blake2b(data, person=b"lv-segment").hex()


def _framing_digest(framing: bytes) -> str:
    """The digest of an event segment's framing: its header and each row's seq, length and chain hash."""
    return crypto.blake2b(framing, person=_FRAMING_PERSON).hex()


def broken_link(rows: list[Row], prev: bytes | None) -> int | None:
    """The seq of the first row that does not follow the one before it (seq + 1, chain hash), starting from the
    chain hash `prev` (None: the first row is taken as it stands); None when every link holds."""
    if not rows:
        return None
    start = rows[0][0]
    if prev is None:
        prev, rows, start = rows[0][1], rows[1:], start + 1
    gap = next((i for i, seq in enumerate(map(itemgetter(0), rows)) if seq != start + i), None)
    link = crypto.first_broken_link(prev, rows if gap is None else rows[:gap])
    i = link if link is not None else gap
    return None if i is None else rows[i][0]


def events_name(first: int, last: int) -> str:
    return f"events-{first:012d}-{last:012d}.seg"


def blobs_name(ordinal: int) -> str:
    return f"blobs-{ordinal:06d}.seg"


def segment_range(name: str) -> tuple[int, int] | None:
    """(first, last) from an event segment's name, else None."""
    m = _EVENTS_NAME.match(name)
    return (int(m[1]), int(m[2])) if m else None


def blob_ordinal(name: str) -> int | None:
    m = _BLOBS_NAME.match(name)
    return int(m[1]) if m else None


def is_segment_name(name: str) -> bool:
    return bool(_EVENTS_NAME.match(name) or _BLOBS_NAME.match(name))


def encode_events(rows: list[Row]) -> tuple[SegmentInfo, bytes]:
    """An event segment of these rows as the manifest lists it (framing digest), and its bytes, framed by C-level
    maps and joins (no Python step per row: a full push frames every row of the log)."""
    payloads = list(map(itemgetter(2), rows))
    hashes = list(map(itemgetter(1), rows))
    heads = list(map(_EVENT_ROW.pack, map(itemgetter(0), rows), map(len, payloads)))
    first, last = rows[0][0], rows[-1][0]
    data = b"".join(chain((EVENTS_MAGIC, struct.pack(">QQ", first, last)),
                          chain.from_iterable(zip(heads, hashes, payloads, strict=True))))
    framing = b"".join(chain((EVENTS_MAGIC, struct.pack(">QQ", first, last)),
                             chain.from_iterable(zip(heads, hashes, strict=True))))
    return SegmentInfo(events_name(first, last), len(data), _framing_digest(framing), first, last,
                       covers=FRAMING), data


def _segment_length(rows: list[Row], limit: int) -> int | None:
    """How many of `rows` the next segment takes: up to `limit` rows, ending early at the row that brings its
    framed size (44 bytes a row beside the payload) to MAX_SEGMENT_BYTES; None when `rows` may end before the
    segment does."""
    sizes = list(accumulate(map(len, map(itemgetter(2), islice(rows, limit)))))
    full = bisect_left(range(len(sizes)), MAX_SEGMENT_BYTES, key=lambda i: sizes[i] + 44 * (i + 1))
    if full < len(sizes):
        return full + 1
    return limit if len(rows) >= limit else None


def cut_events(batches: Iterable[list[Row]]) -> Iterator[tuple[SegmentInfo, bytes]]:
    """`encode_events` of each segment the rows, checked batches of (seq, hash, payload) as the log's
    checked_batches gives them, are cut into, by count and size. The cut depends only on the rows, so a re-run
    after an interruption produces the very same files."""
    limit, rows = max_segment_events(), []
    for batch in batches:
        rows += batch
        while (n := _segment_length(rows, limit)) is not None:
            yield encode_events(rows[:n])
            del rows[:n]
    while rows:
        n = _segment_length(rows, limit) or len(rows)
        yield encode_events(rows[:n])
        del rows[:n]


def _framing_of(data: bytes) -> bytes | None:
    """An event segment's framing taken from its bytes by walking the row lengths (a slice of each row's first 44
    bytes, no payload copied: a third of the cost of hashing the whole file); None if they are not whole rows."""
    if data[:8] != EVENTS_MAGIC or len(data) < 24:
        return None
    parts, pos, end, unpack = [data[:24]], 24, len(data), _EVENT_ROW.unpack_from
    while pos < end:
        if pos + _EVENT_ROW.size + HASH > end:
            return None
        parts.append(data[pos : pos + _EVENT_ROW.size + HASH])
        pos += _EVENT_ROW.size + HASH + unpack(data, pos)[1]
    return b"".join(parts) if pos == end else None


def holds_digest(seg: SegmentInfo, data: bytes) -> bool:
    """These bytes have the digest the manifest lists: of the whole file, or of its framing (which leaves a
    payload's bytes to the chain: `matches`)."""
    if seg.covers == "file":
        return digest(data) == seg.digest
    framing = _framing_of(data)
    return framing is not None and _framing_digest(framing) == seg.digest


def matches(seg: SegmentInfo, data: bytes, prev: bytes | None = None) -> bool:
    """These bytes are the segment the manifest lists: its digest and, for a framing digest, every row's link in
    the chain (from `prev`, the hash before its first row, when known)."""
    if not holds_digest(seg, data):
        return False
    return seg.covers == "file" or broken_link(decode_events(seg.name, data), prev) is None


def blob_segment(ordinal: int, blobs: list[tuple[bytes, bytes]]) -> tuple[SegmentInfo, bytes]:
    """One segment of (raw id, sealed payload) pairs, sorted by id so a re-run writes the same bytes."""
    blobs = sorted(blobs)
    parts = [BLOBS_MAGIC, struct.pack(">Q", len(blobs))]
    for bid, payload in blobs:
        parts += (bid, _BLOB_LEN.pack(len(payload)), payload)
    data = b"".join(parts)
    return SegmentInfo(blobs_name(ordinal), len(data), digest(data), blob_ids=tuple(b.hex() for b, _ in blobs)), data


def decode_events(name: str, data: bytes) -> list[Row]:
    """The rows of an event segment; ReplicaDamaged naming the file if it is cut short or malformed."""
    if data[:8] != EVENTS_MAGIC or len(data) < 24:
        raise ReplicaDamaged(f"Segment {name} is not an event segment (bad header).")
    first, last = struct.unpack_from(">QQ", data, 8)
    rows, pos = [], 24
    while pos < len(data):
        if pos + _EVENT_ROW.size + HASH > len(data):
            raise ReplicaDamaged(f"Segment {name} is truncated at byte {pos}.")
        seq, n = _EVENT_ROW.unpack_from(data, pos)
        pos += _EVENT_ROW.size
        h, payload = data[pos : pos + HASH], data[pos + HASH : pos + HASH + n]
        pos += HASH + n
        if len(payload) != n:
            raise ReplicaDamaged(f"Segment {name} is truncated in event {seq}.")
        rows.append((seq, h, payload))
    if not rows or rows[0][0] != first or rows[-1][0] != last:
        raise ReplicaDamaged(f"Segment {name} does not hold the seq range its header names.")
    return rows


def decode_blobs(name: str, data: bytes) -> list[tuple[bytes, bytes]]:
    """The (raw id, sealed payload) pairs of a blob segment."""
    if data[:8] != BLOBS_MAGIC or len(data) < 16:
        raise ReplicaDamaged(f"Segment {name} is not a blob segment (bad header).")
    (count,), pos, out = struct.unpack_from(">Q", data, 8), 16, []
    for _ in range(count):
        if pos + HASH + _BLOB_LEN.size > len(data):
            raise ReplicaDamaged(f"Segment {name} is truncated at byte {pos}.")
        bid = data[pos : pos + HASH]
        (n,) = _BLOB_LEN.unpack_from(data, pos + HASH)
        pos += HASH + _BLOB_LEN.size
        payload = data[pos : pos + n]
        pos += n
        if len(payload) != n:
            raise ReplicaDamaged(f"Segment {name} is truncated in a blob.")
        out.append((bid, payload))
    if pos != len(data):
        raise ReplicaDamaged(f"Segment {name} has trailing bytes after its last blob.")
    return out
