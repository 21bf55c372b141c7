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
from dataclasses import dataclass
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
    parts = [EVENTS_MAGIC, struct.pack(">QQ", rows[0][0], rows[-1][0])]
    for seq, h, payload in rows:
        parts += (_EVENT_ROW.pack(seq, len(payload)), h, payload)
    return b"".join(parts)


def cut_events(rows: Iterable[tuple[int, bytes, bytes, bytes]]) -> Iterator[tuple[int, int, bytes]]:
    """(first, last, bytes of `encode_events`) of each segment the rows (seq, prev, hash, payload, as the log's
    checked_rows gives them) are cut into, by count and size. The cut depends only on the rows, so a re-run after
    an interruption produces the very same files. Encodes as it goes: a separate pass over each batch cost a
    third of a full push."""
    limit, pack = max_segment_events(), _EVENT_ROW.pack
    parts: list[bytes] = []
    n = size = first = last = 0
    for seq, _, h, payload in rows:
        if not n:
            first = seq
        parts += (pack(seq, len(payload)), h, payload)
        n, size, last = n + 1, size + len(payload) + 44, seq
        if n >= limit or size >= MAX_SEGMENT_BYTES:
            yield first, last, b"".join([EVENTS_MAGIC, struct.pack(">QQ", first, last), *parts])
            parts, n, size = [], 0, 0
    if n:
        yield first, last, b"".join([EVENTS_MAGIC, struct.pack(">QQ", first, last), *parts])


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
