"""The API's request and response bodies (pydantic), so FastAPI validates them and documents them.

Record fields are JSON values: the known fields of each kind are listed with their types (for the docs);
the library checks them against the kind's schema (vault/domain/kinds.py), so a misspelled field or a
wrong type gets its one sentence (422). Other fields are kept, in the record's `extra`, only when the
caller asks with `allow_extra`. In a patch, null removes a field; in a create, a null field is refused.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from vault.domain.kinds import TYPES, Kind, KindSpec

MAX_BATCH_OPERATIONS = 10_000
RECORD_ID_PATTERN = r"^[a-z]{1,8}_[a-z0-9]{1,64}$"  # its prefix is checked against the kinds registered
BATCH_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
BLOB_ID_PATTERN = r"^[0-9a-f]{64}$"


class RecordFields(BaseModel):
    """A JSON object of fields; values must be real JSON (valid UTF-8 text, finite numbers)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _storable(self) -> "RecordFields":
        _check_json(self.model_dump(exclude_unset=True))
        return self

    def as_dict(self) -> dict[str, Any]:
        """Only the fields the client sent (so null in a patch means remove)."""
        return self.model_dump(exclude_unset=True)


def _check_json(value: Any) -> None:
    """Refuse what Python's JSON parser lets through but JSON cannot carry back out."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("field names and values must be valid Unicode text (a lone surrogate was found)") from None
    except ValueError:
        raise ValueError("numbers must be finite: NaN and Infinity are not JSON") from None


_MODELS: dict[str, tuple[KindSpec, type[RecordFields]]] = {}


def fields_model(kind: Kind) -> type[RecordFields]:
    """The body model of one kind, made from its spec when an app is built (so a kind registered later has one)."""
    made = _MODELS.get(kind.value)
    if made is None or made[0] is not kind.spec:
        known = {f.name: (Any, Field(default=None, description=f"{TYPES[f.type][1]}. {f.help}".strip()))
                 for f in kind.spec.fields}
        model = create_model(f"{kind.value.title()}Fields", __base__=RecordFields, **known)  # type: ignore[call-overload]
        made = _MODELS[kind.value] = (kind.spec, model)
    return made[1]


class Health(BaseModel):
    status: Literal["ok", "degraded"] = "ok"
    replicas_failing: int | None = None  # only when pushes to some replicas fail (a count: names are not open)


class Written(BaseModel):
    """What a write did: the record and the event that recorded it (no field values: append-only tokens see this)."""

    id: str
    seq: int | None = Field(description="The event recorded; null when an update changed nothing.")
    event: Literal["created", "updated", "deleted", "unchanged"]


class Accepted(BaseModel):
    """An append-only token's answer to every record write (202): the same whether or not anything changed,
    so guessing a current value and watching the answer teaches nothing. No seq either: a gap would tell."""

    id: str | None = Field(description="The record written (a create's new id); null for an import.")
    status: Literal["accepted"] = "accepted"


class Record(BaseModel):
    id: str
    kind: Kind
    fields: dict[str, Any]
    seq: int = Field(description="The state shown is the one after this event.")


class RecordPage(BaseModel):
    kind: Kind
    seq: int = Field(description="The state shown is the one after this event.")
    records: list[Record]
    next_after: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class Version(BaseModel):
    """One version of a record in its history."""

    seq_from: int
    seq_to: int | None
    valid_from: str
    valid_to: str | None
    event: str
    deleted: bool
    source: dict[str, Any]
    fields: dict[str, Any] | None


class Change(BaseModel):
    """One event of the log, as a sync client needs it."""

    seq: int
    recorded_at: str
    type: Literal["created", "updated", "deleted", "revived"]
    kind: Kind
    id: str
    changes: dict[str, Any] = Field(description="created/revived: all fields; updated: the patch (null removes).")
    source: dict[str, Any]


class ChangesPage(BaseModel):
    since: int
    head: int = Field(description="The last event in the vault when this page was read.")
    next_since: int = Field(description="Pass as `since` for the next page; equals head when caught up.")
    events: list[Change]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateOp(_Op):
    op: Literal["create"]
    kind: Kind
    fields: RecordFields
    id: str | None = Field(default=None, pattern=RECORD_ID_PATTERN,
                           description="A client-chosen id (its letter must match the kind); default: a fresh one.")
    allow_extra: bool = Field(default=False, description="Keep fields the kind does not know (in `extra`).")


class UpdateOp(_Op):
    op: Literal["update"]
    id: str = Field(pattern=RECORD_ID_PATTERN)
    fields: RecordFields = Field(description="A field-level patch: null removes a field.")
    allow_extra: bool = Field(default=False, description="Keep fields the kind does not know (in `extra`).")


class DeleteOp(_Op):
    op: Literal["delete"]
    id: str = Field(pattern=RECORD_ID_PATTERN)


Operation = Annotated[Union[CreateOp, UpdateOp, DeleteOp], Field(discriminator="op")]


class BatchIn(BaseModel):
    """Many changes in one transaction: all are stored, or none."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str = Field(pattern=BATCH_ID_PATTERN,
                          description="Chosen by the client; a retried batch with the same id is stored once.")
    operations: list[Operation] = Field(min_length=1, max_length=MAX_BATCH_OPERATIONS)


class BatchOut(BaseModel):
    batch_id: str
    replayed: bool = Field(description="True when this batch id was already stored: nothing new was written.")
    results: list[Written]


class BatchAccepted(BaseModel):
    """An append-only token's answer to a batch (202): one `Accepted` per operation, nothing about what changed."""

    batch_id: str
    replayed: bool = Field(description="True when this token already sent this batch id: nothing new was written.")
    results: list[Accepted]


class ImportResult(BaseModel):
    """What an uploaded file's import did: the same summary `lifevault import --json` prints."""

    import_id: str = Field(description="Undo it with `lifevault undo-import IMPORT_ID`.")
    format: str
    file: str
    created: int
    updated: int
    unchanged: int
    deleted: int
    skipped: list[dict[str, str]] = Field(description="Parts of the file that could not be read: location and reason.")
    warnings: list[dict[str, str]] = Field(default_factory=list,
                                           description="What the importer had to guess (e.g. a date order): location and warning.")
    options: dict[str, str] = Field(default_factory=dict, description="The importer's options, defaults included.")


class ImportAccepted(BaseModel):
    """An append-only token's answer to an upload (202): no counts, as "unchanged" would confirm current values."""

    status: Literal["accepted"] = "accepted"
    import_id: str = Field(description="Undo it with `lifevault undo-import IMPORT_ID`.")
    format: str
    file: str
    skipped: list[dict[str, str]] = Field(description="Parts of the file that could not be read: location and reason.")
    warnings: list[dict[str, str]] = Field(default_factory=list,
                                           description="What the importer had to guess (e.g. a date order): location and warning.")


class BlobRef(BaseModel):
    """What a record's field holds to point at an attachment."""

    blob: str
    size: int
    name: str | None = None
    type: str | None = None
