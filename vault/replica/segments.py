"""Segment files: immutable runs of raw, already-encrypted vault rows.

An event segment holds the rows (seq, chain hash, sealed payload) of one seq
range exactly as the vault stores them; a blob segment holds sealed blobs.
Nothing is decrypted or re-encrypted on the way, so a replica holds only
ciphertext. File names reveal a seq range (events) or a push ordinal (blobs),
nothing else. Layout, big-endian:

    event segment: b"LVREPEV1" first:u64 last:u64, then per row  seq:u64 len:u32 hash[32] payload[len]
    blob segment:  b"LVREPBL1" count:u64,          then per blob id[32] len:u32 payload[len]
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
    digest: str  # hex BLAKE2b of the whole file
    first: int = 0  # event segments: the seq range
    last: int = 0
    blob_ids: tuple[str, ...] = ()  # blob segments: keyed ids (opaque without the key)

    def as_dict(self) -> dict:
        d = {"name": self.name, "size": self.size, "digest": self.digest}
        if self.blob_ids:
            d["blob_ids"] = list(self.blob_ids)
        else:
            d.update(first=self.first, last=self.last)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentInfo":
        return cls(d["name"], d["size"], d["digest"], d.get("first", 0), d.get("last", 0), tuple(d.get("blob_ids", ())))


def digest(data: bytes) -> str:
    return crypto.blake2b(data, person=b"lv-segment").hex()


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


def encode_events(rows: list[Row]) -> bytes:
    """The bytes of an event segment of these rows, framed by C-level maps and one join (no Python step per row:
    a full push frames every row of the log)."""
    payloads = list(map(itemgetter(2), rows))
    heads = map(_EVENT_ROW.pack, map(itemgetter(0), rows), map(len, payloads))
    return b"".join(chain((EVENTS_MAGIC, struct.pack(">QQ", rows[0][0], rows[-1][0])),
                          chain.from_iterable(zip(heads, map(itemgetter(1), rows), payloads, strict=True))))


def _segment_length(rows: list[Row], limit: int) -> int | None:
    """How many of `rows` the next segment takes: up to `limit` rows, ending early at the row that brings its
    framed size (44 bytes a row beside the payload) to MAX_SEGMENT_BYTES; None when `rows` may end before the
    segment does."""
    sizes = list(accumulate(map(len, map(itemgetter(2), islice(rows, limit)))))
    full = bisect_left(range(len(sizes)), MAX_SEGMENT_BYTES, key=lambda i: sizes[i] + 44 * (i + 1))
    if full < len(sizes):
        return full + 1
    return limit if len(rows) >= limit else None


def cut_events(batches: Iterable[list[Row]]) -> Iterator[tuple[int, int, bytes]]:
    """(first, last, bytes of `encode_events`) of each segment the rows, checked batches of (seq, hash, payload)
    as the log's checked_batches gives them, are cut into, by count and size. The cut depends only on the rows,
    so a re-run after an interruption produces the very same files."""
    limit, rows = max_segment_events(), []
    for batch in batches:
        rows += batch
        while (n := _segment_length(rows, limit)) is not None:
            yield rows[0][0], rows[n - 1][0], encode_events(rows[:n])
            del rows[:n]
    while rows:
        n = _segment_length(rows, limit) or len(rows)
        yield rows[0][0], rows[n - 1][0], encode_events(rows[:n])
        del rows[:n]


def event_segment(first: int, last: int, data: bytes) -> SegmentInfo:
    """How the manifest lists an event segment of these bytes."""
    return SegmentInfo(events_name(first, last), len(data), digest(data), first, last)


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
