"""Event <-> bytes, the plaintext that crypto seals.

Order when storing: encode (compact JSON) -> compress (zlib, when it pays) ->
encrypt (crypto) -> chain (log). Reading is the exact reverse. The first byte
says whether the JSON was compressed, so both forms stay readable forever.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from .events import Event, EventType, Kind, Source

CODEC_VERSION = 1
_RAW, _ZLIB = b"\x00", b"\x01"
_COMPRESS_FROM = 200  # bytes of JSON below which zlib rarely saves anything


def dumps(value: Any) -> bytes:
    """Compact, key-sorted JSON: the same value always gives the same bytes."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def pack(data: bytes) -> bytes:
    """Prefix a flag byte, compressing when that makes the result smaller."""
    if len(data) >= _COMPRESS_FROM:
        small = zlib.compress(data, 1)
        if len(small) < len(data):
            return _ZLIB + small
    return _RAW + data


def unpack(blob: bytes) -> bytes:
    """Undo `pack`."""
    flag, body = blob[:1], blob[1:]
    if flag == _RAW:
        return body
    if flag == _ZLIB:
        return zlib.decompress(body)
    raise ValueError(f"unknown codec flag {flag!r}")


def encode_event(event: Event, recorded_at: int) -> bytes:
    """The plaintext of one event: type, kind, id, changes, time and source."""
    return pack(dumps({
        "v": CODEC_VERSION,
        "t": event.type.value,
        "k": event.kind.value,
        "id": event.record_id,
        "c": event.changes,
        "at": recorded_at,
        "src": event.source.as_dict(),
    }))


def decode_event(blob: bytes) -> tuple[Event, int]:
    """The event and its recorded_at, from `encode_event`'s bytes."""
    d = json.loads(unpack(blob))
    if d.get("v") != CODEC_VERSION:
        raise ValueError(f"unknown event codec version {d.get('v')!r}")
    event = Event(EventType(d["t"]), Kind(d["k"]), d["id"], d["c"], Source.from_dict(d["src"]), d["at"])
    return event, d["at"]
