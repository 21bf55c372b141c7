"""The domain: the events that change records (the kinds of record are declared in kinds.py).

Pure data, no I/O. An event is what happened to one record; a `Recorded` event
is an event with its place in the log (seq) and the instant it was recorded.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from vault.domain.kinds import FIELD_NAMES, Kind
from vault.errors import InvalidRecord


class EventType(str, Enum):
    CREATED = "created"
    UPDATED = "updated"  # a field-level patch: a None value removes the field
    DELETED = "deleted"  # a tombstone: nothing is erased
    REVIVED = "revived"  # a deleted record comes back with the given fields


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RECORD_ID = re.compile(r"^([a-z]{1,8})_[a-z0-9]{1,64}$")
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_record_id(kind: Kind) -> str:
    """A fresh random id whose first letter names the kind, e.g. `c_4k9x0m2q7r1t`."""
    n = int.from_bytes(secrets.token_bytes(8), "big")  # 60 of these 64 random bits make the 12 characters
    return kind.prefix + "_" + "".join(_ID_ALPHABET[(n >> (5 * i)) & 31] for i in range(12))


def kind_of(record_id: str) -> Kind:
    """The kind a record id belongs to, from its prefix."""
    m = _RECORD_ID.match(record_id) if isinstance(record_id, str) else None
    kind = Kind.by_prefix(m.group(1)) if m else None
    if kind is None:
        *most, last = [f"{k.prefix}_…" for k in Kind]
        like = f"{', '.join(most)} or {last}" if most else last
        raise InvalidRecord(f"{record_id!r} is not a record id (like {like}).")
    return kind


def check_fields(fields: Mapping[str, Any], *, patch: bool = False) -> dict[str, Any]:
    """Validate field names (and, outside a patch, refuse None values); return a plain dict."""
    if not isinstance(fields, Mapping):
        raise InvalidRecord("Fields must be a JSON object.")
    for name, value in fields.items():
        if name not in FIELD_NAMES and (not isinstance(name, str) or not _FIELD_NAME.match(name) or name == "id"):
            raise InvalidRecord(f"{name!r} is not a usable field name (letters, digits, _; not 'id').")
        if value is None and not patch:
            raise InvalidRecord(f"Field {name!r} is null; leave it out instead.")
    return dict(fields)


def apply_patch(data: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The record after a field-level patch (None removes a field)."""
    out = dict(data)
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The patch that turns `old` into `new`."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


@dataclass(frozen=True)
class Source:
    """Where a change came from: `via` is cli, api, import or demo; the rest says who or what."""

    via: str
    name: str | None = None  # API token name, importer name
    file: str | None = None  # imported file
    detail: Mapping[str, Any] = field(default_factory=dict)  # e.g. importer version, file hash

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"via": self.via}
        if self.name:
            out["name"] = self.name
        if self.file:
            out["file"] = self.file
        if self.detail:
            out["detail"] = dict(self.detail)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Source":
        return cls(d["via"], d.get("name"), d.get("file"), d.get("detail") or {})

    def describe(self) -> str:
        """A short phrase for timelines: `cli`, `api token phone`, `import vcard from a.vcf`."""
        parts = [self.via]
        if self.name:
            parts.append(("token " if self.via == "api" else "") + self.name)
        if self.file:
            parts.append("from " + self.file)
        if self.detail.get("import_id"):  # so `lifevault log` shows what `undo-import` takes
            parts.append(f"({self.detail['import_id']})")
        return " ".join(parts)


@dataclass(frozen=True)
class Event:
    """One change to one record. `recorded_at` is UTC microseconds; None means now."""

    type: EventType
    kind: Kind
    record_id: str
    changes: Mapping[str, Any]
    source: Source
    recorded_at: int | None = None


@dataclass(frozen=True)
class Recorded:
    """An event as stored: its seq and the instant it was recorded (UTC microseconds)."""

    seq: int
    recorded_at: int
    event: Event
