"""The contract between the core and format plugins (importers and exporters).

An importer reads an Input (a file, a folder, or bytes that never touched a
disk) and yields SourceRecords (or BadRecords for parts it cannot parse); the
core compares them with the vault's state and appends only what changed. An
exporter writes records back out. Both are registered through the
`register_importers` / `register_exporters` hooks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Protocol

from vault.domain.events import Kind


class Input:
    """What an importer reads: a name, a byte stream, and the file or folder on disk when there is one.

    From a path (the CLI) or from bytes held in memory (an upload, one vCard from CardDAV, one message from
    IMAP), so a front end never writes someone's plaintext to disk to import it. An importer that reads
    `open()` takes both alike; one that needs a folder or the files beside the file looks at `path`."""

    def __init__(self, name: str, *, path: Path | None = None, data: bytes | None = None) -> None:
        self.name = name  # the file's name as its owner knows it (some formats go by the suffix)
        self.path = path  # the file or folder on disk; None for bytes
        self._data = data

    @classmethod
    def from_path(cls, path: Path | str) -> Input:
        path = Path(path)
        return cls(path.name, path=path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Input:
        return cls(name, data=data)

    @staticmethod
    def of(source: Input | Path | str) -> Input:
        """An Input for what a caller passed: built-in importers also take a plain path."""
        return source if isinstance(source, Input) else Input.from_path(source)

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def exists(self) -> bool:
        return self._data is not None or (self.path is not None and self.path.exists())

    def is_dir(self) -> bool:
        return self._data is None and self.path is not None and self.path.is_dir()

    def is_file(self) -> bool:
        return self._data is not None or (self.path is not None and self.path.is_file())

    def size(self) -> int:
        """The length in bytes (OSError for a missing file)."""
        if self._data is not None:
            return len(self._data)
        if self.path is None:
            raise FileNotFoundError(self.name)
        return self.path.stat().st_size

    def open(self) -> BinaryIO:
        """A new binary stream from the start, seekable (a zip reads its end first)."""
        if self._data is not None:
            return io.BytesIO(self._data)
        if self.path is None:
            raise FileNotFoundError(self.name)
        return self.path.open("rb")

    def head(self, size: int = 8192) -> bytes:
        """The first `size` bytes; b"" for a folder or an unreadable file."""
        try:
            with self.open() as f:
                return f.read(size)
        except OSError:
            return b""

    def __str__(self) -> str:  # what messages name: the path the user typed, or the upload's name
        return str(self.path) if self.path is not None else self.name

    def __repr__(self) -> str:
        return f"Input({str(self)!r}{'' if self._data is None else ', in memory'})"


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
    # Optional: `streams: bool` — True: `detect` and `read` get an `Input`, which may be bytes held in memory
    # (an upload, one record from a sync front end) or a file or folder on disk (`Input.path`). Absent or
    # False (the contract before streams, kept for folder-only formats and older plugins): they get a `Path`,
    # and the core never offers them bytes.
    # Optional: `namespace: str` — importers sharing one map the same source id to the same record
    # (e.g. every mail format uses "mail" so a Message-ID is one record); defaults to `name`.
    # Optional: `options: tuple[ImportOption, ...]` — `read` then gets each as a keyword argument (a str), the
    # default filled in; the values are recorded in every event of the import.

    def detect(self, source: Any) -> bool:
        """Whether `source` (an Input, or a Path without `streams`) looks like this format: a cheap look."""

    def read(self, source: Any) -> Iterator[SourceRecord | BadRecord | Notice]:
        """The records in `source`; raise IngestError when the input as a whole is unusable."""


class Exporter(Protocol):
    name: str
    description: str
    # Optional: `kinds: tuple[Kind, ...]` — only records of these kinds are passed to `write`.

    def write(self, records: Iterable[ExportRecord], out: Path, get_blob: Callable[[str], bytes]) -> int:
        """Write records to `out`; returns how many were written."""
