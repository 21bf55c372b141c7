"""Event <-> bytes, the plaintext that crypto seals.

Order when storing: encode -> pack (a flag byte; zlib for blobs, where it
pays, not for events, where it cost more time than the bytes it saved) ->
encrypt (crypto) -> chain (log). Reading is the exact reverse. The flag byte
keeps both forms readable forever.

The plaintext is a small binary header (type, kind, time, then the id and the
source), followed by the changes as JSON, so replay can store a created
record's fields without parsing them.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any, Iterator

import orjson

from vault.errors import InvalidRecord
from vault.domain.events import Event, EventType, Kind, Source

CODEC_VERSION = 1
_RAW, _ZLIB = b"\x00", b"\x01"
_COMPRESS_FROM = 200  # bytes of JSON below which zlib rarely saves anything
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON: the same value always gives the same text."""
    try:
        return _ENCODER.encode(value)
    except ValueError as e:  # NaN and Infinity are not JSON: SQLite's JSON functions would drop them
        raise InvalidRecord("Field values cannot be NaN or Infinity.") from e


def loads(text: str | bytes) -> Any:
    """Parse JSON with orjson (2-3x faster on the read paths); json for the rare values it refuses
    (integers past 64 bits), so whatever `dumps` wrote always reads back."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class LazyFields(Mapping):
    """Decoded changes, parsed only when read; `text` is their JSON as stored."""

    __slots__ = ("text", "_data")

    def __init__(self, text: str, data: dict[str, Any] | None = None) -> None:
        self.text, self._data = text, data

    @classmethod
    def wrap(cls, changes: Mapping[str, Any]) -> "LazyFields":
        """Changes with their JSON text computed once, to be stored and projected."""
        return changes if isinstance(changes, LazyFields) else cls(dumps(changes), dict(changes))

    def _parsed(self) -> dict[str, Any]:
        if self._data is None:
            self._data = loads(self.text)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return f"LazyFields({self._parsed()!r})"


def fields_json(changes: Mapping[str, Any]) -> str:
    """The JSON text of a changes mapping, reusing the stored text when there is one."""
    return changes.text if isinstance(changes, LazyFields) else dumps(changes)


def pack(data: bytes, compress: bool = True) -> bytes:
    """Prefix a flag byte, compressing (if asked) when that makes the result smaller."""
    if compress and len(data) >= _COMPRESS_FROM:
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


# The header: version, type, kind, recorded_at, then id and source as length-prefixed UTF-8.
_HEADER = struct.Struct(">BBBqHH")
# Codes are part of the stored format: never renumber, only add (a kind's code is in its KindSpec).
_TYPE_CODE = {EventType.CREATED: 1, EventType.UPDATED: 2, EventType.DELETED: 3, EventType.REVIVED: 4}
_TYPES = {code: t for t, code in _TYPE_CODE.items()}
_sources: dict[bytes, Source] = {}  # decoded sources by their bytes: imports repeat one source many times
_source_texts: dict[int, tuple[Source, str]] = {}  # encoded sources by object, for the same reason


def source_json(source: Source) -> str:
    """A Source as JSON, computed once per Source object (a batch or an import shares one)."""
    hit = _source_texts.get(id(source))
    if hit is None or hit[0] is not source:
        if len(_source_texts) >= 4096:
            _source_texts.clear()
        hit = _source_texts[id(source)] = (source, dumps(source.as_dict()))
    return hit[1]


def encode_event(event: Event, recorded_at: int) -> bytes:
    """The plaintext of one event: a fixed header, the id, the source, then the changes as JSON."""
    try:
        rid, src, fields = event.record_id.encode(), source_json(event.source).encode(), fields_json(event.changes).encode()
    except UnicodeEncodeError as e:
        raise InvalidRecord(f"Record {event.record_id} cannot be stored: its text holds an unpaired surrogate (not valid Unicode).") from e
    header = _HEADER.pack(CODEC_VERSION, _TYPE_CODE[event.type], event.kind.spec.code, recorded_at, len(rid), len(src))
    return pack(header + rid + src + fields, compress=False)


def decode_parts(blob: bytes) -> tuple[int, int, int, str, bytes, str]:
    """`encode_event`'s bytes as plain values (type code, kind code, recorded_at, id, source bytes,
    changes JSON): cheap to send to another process, made into an Event by `event_from_parts`."""
    raw = unpack(blob)
    version, t, k, at, n_id, n_src = _HEADER.unpack_from(raw)
    if version != CODEC_VERSION:
        raise ValueError(f"unknown event codec version {version}")
    i = _HEADER.size
    return t, k, at, raw[i : i + n_id].decode(), raw[i + n_id : i + n_id + n_src], raw[i + n_id + n_src :].decode()


def event_types() -> dict[int, EventType]:
    """The event types by the code the stored format gives them."""
    return dict(_TYPES)


def event_from_parts(t: int, k: int, at: int, record_id: str, src_bytes: bytes, changes: str) -> Event:
    """The Event `decode_parts` took apart."""
    source = _sources.get(src_bytes)
    if source is None:
        source = Source.from_dict(json.loads(src_bytes))
        if len(_sources) < 4096:
            _sources[src_bytes] = source
    return Event(_TYPES[t], Kind.by_code(k), record_id, LazyFields(changes), source, at)
