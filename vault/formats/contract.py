"""The contract between the core and format plugins (importers and exporters).

An importer reads a file or folder and yields SourceRecords (or BadRecords for
parts it cannot parse); the core compares them with the vault's state and
appends only what changed. An exporter writes records back out. Both are
registered through the `register_importers` / `register_exporters` hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from vault.domain.events import Kind


@dataclass(frozen=True)
class Attachment:
    """Binary content for a record; the core stores it as a blob and puts a reference in `field`."""

    field: str  # e.g. "photo" (one reference) or "attachments" (a list of references: a name ending in "s")
    data: bytes
    name: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class SourceRecord:
    """One record as a source file has it."""

    kind: Kind
    source_id: str  # stable within the source: Message-ID, vCard UID, file path, …
    fields: dict[str, Any]
    attachments: tuple[Attachment, ...] = ()
    location: str = ""  # where in the file: "line 12", "card 3", "message 7"
    record_id: str | None = None  # a vault id the source carries (lifevault's own exports); else derived
    deleted: bool = False  # the source holds it as deleted (e.g. in a trash): kept in history, not live
    # Source ids an earlier version of the importer gave this record: when the current one is new to the vault,
    # the record found under one of these, last imported from a file of the same name, is kept (no duplicate).
    previous_source_ids: tuple[str, ...] = ()
    # What tells apart two different source records that share a source id (e.g. a content fingerprint
    # for two messages with one Message-ID): the second becomes its own record, linked to the first.
    identity: str | None = None
    warnings: tuple[str, ...] = ()  # bytes guessed, text recovered: reported beside the summary, not skipped


@dataclass(frozen=True)
class BadRecord:
    """A part of the input that could not be parsed; reported and skipped (or fatal with --strict)."""

    location: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something the importer had to decide about the input as a whole (a guessed date order, a missing file);
    reported as a warning, never fatal. What concerns one record goes in its `SourceRecord.warnings`."""

    location: str
    message: str


@dataclass(frozen=True)
class ImportOption:
    """An option an importer takes, typed after the path: `lifevault import FORMAT PATH --date-order dmy`."""

    name: str  # an identifier (date_order); the command line spells it --date-order
    help: str
    choices: tuple[str, ...] = ()  # empty: any text
    default: Callable[[], str] | None = None  # the value used, and recorded with the import, when not given


@dataclass(frozen=True)
class ExportRecord:
    """A record handed to an exporter: its kind, vault id and fields (blob references included)."""

    kind: Kind
    record_id: str
    fields: dict[str, Any] = field(default_factory=dict)


class Importer(Protocol):
    name: str  # the format name users type, e.g. "vcard"
    version: str  # recorded in every event this importer causes
    description: str
    # Optional: `namespace: str` — importers sharing one map the same source id to the same record
    # (e.g. every mail format uses "mail" so a Message-ID is one record); defaults to `name`.
    # Optional: `options: tuple[ImportOption, ...]` — `read` then gets each as a keyword argument (a str), the
    # default filled in; the values are recorded in every event of the import.

    def detect(self, path: Path) -> bool:
        """Whether `path` looks like this format (a cheap look at its content)."""

    def read(self, path: Path) -> Iterator[SourceRecord | BadRecord | Notice]:
        """The records in `path`; raise IngestError when the file as a whole is unusable."""


class Exporter(Protocol):
    name: str
    description: str
    # Optional: `kinds: tuple[Kind, ...]` — only records of these kinds are passed to `write`.

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        """Write records to `out`; returns how many were written."""
